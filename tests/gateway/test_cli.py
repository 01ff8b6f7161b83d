"""`nps-edge gateway` and `nps-edge gateway status`: settings sources, help, status output."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gateway import cli
from gateway.config import load_settings
from gateway.policy import Event, Rejected
from gateway.store import Store

runner = CliRunner()


def app() -> typer.Typer:
    root = typer.Typer()
    cli.register(root)
    root.command("noop", hidden=True)(lambda: None)  # keep `gateway` a sub-group
    return root


def test_settings_flags_beat_environment_beat_file(tmp_path, monkeypatch):
    config = tmp_path / "gateway.toml"
    config.write_text('broker = "file:1"\nmax_events = 5\nserver = "http://file"\n')
    monkeypatch.setenv("NPS_EDGE_BROKER", "env:2")
    monkeypatch.setenv("NPS_EDGE_SERVER", "http://env")
    s = load_settings({"server": "http://flag", "broker": None}, config)
    assert (s.server, s.broker, s.max_events) == ("http://flag", "env:2", 5)
    assert s.limits.max_events == 5
    assert s.synchronous == "FULL"
    monkeypatch.setenv("NPS_EDGE_SYNCHRONOUS", "normal")
    assert load_settings({}, None).synchronous == "NORMAL"


def test_every_gateway_command_has_help():
    group = typer.main.get_command(app())
    gateway = group.commands["gateway"]
    assert gateway.help
    assert set(gateway.commands) == {"status", "requeue"}
    for name, command in gateway.commands.items():
        assert command.help, f"gateway {name} has no help text"
    for param in gateway.params:
        assert param.help or param.name == "ctx", f"--{param.name} has no help text"


def test_gateway_without_server_or_token_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NPS_EDGE_SERVER", raising=False)
    monkeypatch.delenv("NPS_EDGE_TOKEN", raising=False)
    result = runner.invoke(app(), ["gateway", "--store", str(tmp_path / "g.db")])
    assert result.exit_code == 2
    assert "--server and --token are required" in result.output


def test_status_reports_depth_age_forwarded_dropped_dead_letters(tmp_path):
    path = tmp_path / "g.db"
    store = Store(path)
    now = store.clock()
    store.put(
        [Event(f"nps-a1b2c3:{i}", "nps-a1b2c3", "feedback", now - 60, b"{}") for i in (1, 2, 3)]
    )
    store.put([Rejected("nps/v1/x/feedback", b"junk", "payload is not JSON", now)])
    store.done(store.peek(1), {})
    store.close()
    result = runner.invoke(app(), ["gateway", "status", "--store", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["depth"] == 2 and report["forwarded"] == 1
    assert 59 <= report["oldest_age_s"] < 120
    assert report["dead_letters"] == {"rows": 1, "edge": 1, "server": 0, "throttled": 0}
    assert report["dropped"] == {}
    text = runner.invoke(app(), ["gateway", "status", "--store", str(path)])
    assert "depth: 2" in text.output and "payload is not JSON" in text.output


def test_status_of_a_missing_store_is_a_clean_error(tmp_path):
    result = runner.invoke(app(), ["gateway", "status", "--store", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert "no gateway store" in result.output


def test_requeue_command(tmp_path):
    path = tmp_path / "g.db"
    store = Store(path)
    body = b'{"id":"nps-a1b2c3:1","device":"nps-a1b2c3","type":"feedback","rx_ts":5.0}'
    store.put([Event("nps-a1b2c3:1", "nps-a1b2c3", "feedback", 5.0, body)])
    store.done(store.peek(1), {0: "server said no"})
    store.close()
    result = runner.invoke(app(), ["gateway", "requeue", "--store", str(path)])
    assert result.exit_code == 0 and "requeued 1 events" in result.output
    again = Store(path, readonly=True)
    assert again.ids() == ["nps-a1b2c3:1"]
    again.close()


def test_the_shipped_example_config_loads(monkeypatch):
    monkeypatch.delenv("NPS_EDGE_TOKEN", raising=False)
    shipped = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "gateway.toml"
    s = load_settings({}, shipped)
    assert (s.synchronous, s.max_events, s.metrics_port) == ("FULL", 1_000_000, 9108)
    assert s.store == Path("/var/lib/nps-edge/gateway.db") and s.token is None


@pytest.fixture
def keep_logging():
    """`nps-edge gateway` configures the nps_edge loggers; give them back afterwards."""
    logger = logging.getLogger("nps_edge")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def test_a_busy_metrics_port_is_a_clean_error(tmp_path, keep_logging):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["gateway", "--server", "http://127.0.0.1:9", "--token", "t", "--store"]
        args += [str(tmp_path / "g.db"), "--metrics-port", str(port), "--broker", "127.0.0.1:9"]
        result = runner.invoke(app(), args, env={"NPS_EDGE_METRICS_HOST": "127.0.0.1"})
    assert result.exit_code == 1, result.output
    assert f"cannot serve /metrics on port {port}" in result.output


def test_broker_login_and_token_file_from_the_config_file(tmp_path, monkeypatch):
    for name in ("TOKEN", "BROKER_PASSWORD", "BROKER_USERNAME"):
        monkeypatch.delenv(f"NPS_EDGE_{name}", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("npsg_secret\n")
    config = tmp_path / "gateway.toml"
    config.write_text(
        'broker_username = "gw-site1"\nbroker_password = "pw-from-file"\n'
        f'broker_tls = true\nbroker_ca = "{tmp_path / "ca.crt"}"\ntoken_file = "{token_file}"\n'
        "rate_per_device = 2.5\nburst_per_device = 100\n"
    )
    s = load_settings({}, config)
    assert (s.broker_username, s.broker_tls, s.token) == ("gw-site1", True, "npsg_secret")
    assert s.broker_password is not None and s.broker_password.get_secret_value() == "pw-from-file"
    assert "pw-from-file" not in repr(s) and "pw-from-file" not in str(s.model_dump())
    assert (s.rate_per_device, s.burst_per_device) == (2.5, 100)
    monkeypatch.setenv("NPS_EDGE_BROKER_PASSWORD", "pw-from-env")
    assert load_settings({}, config).broker_password.get_secret_value() == "pw-from-env"


def test_the_broker_password_is_never_a_flag(tmp_path):
    result = runner.invoke(app(), ["gateway", "--broker-password", "x", "--store", "g.db"])
    assert result.exit_code == 2 and "No such option" in result.output
    help_text = runner.invoke(app(), ["gateway", "--help"]).output
    assert "--broker-username" in help_text and "--broker-tls" in help_text
    assert "--token-file" in help_text and "--broker-ca" in help_text


def test_an_unreadable_token_file_is_a_clean_error(tmp_path):
    args = ["gateway", "--server", "http://x", "--token-file", str(tmp_path / "none")]
    result = runner.invoke(app(), args)
    assert result.exit_code == 2 and "token_file" in result.output
