"""Structured logs: one JSON object per line on stderr, for journald and log shippers."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    # UTC for this formatter only, not every logger of the process; staticmethod: a plain
    # function here reads to the checker as a method, and gmtime would lose its argument.
    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log `msg` with key/value fields kept as fields (not formatted into the text)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("nps_edge")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
