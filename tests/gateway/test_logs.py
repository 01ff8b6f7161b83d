"""The gateway's JSON logs: configuring them leaves the rest of the process's logging alone."""

from __future__ import annotations

import json
import logging
import time

import pytest

from gateway import logs


def test_configure_keeps_other_formatters_local_time(capsys: pytest.CaptureFixture[str]) -> None:
    before = logging.Formatter.converter
    try:
        logs.configure("INFO")
        assert logging.Formatter.converter is before  # not changed for the whole process
        assert logs.JsonFormatter.converter is time.gmtime
        logs.log_event(logging.getLogger("nps_edge.test"), logging.INFO, "hello", n=1)
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert (line["msg"], line["n"], line["level"]) == ("hello", 1, "info")
    finally:
        logging.getLogger("nps_edge").handlers.clear()
        logging.Formatter.converter = before
