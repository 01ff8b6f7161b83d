"""`nps-edge demo` on embedded defaults: per site an amqtt broker and a site-bound
gateway, one server on SQLite, simulated firmware; and the demo's secrets and files."""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nps_edge.broker import free_port
from nps_edge.demo import is_loopback, make_private
from nps_edge.processes import ProcessError, wait_until

pytestmark = pytest.mark.slow
DEMO_SITES = ("store-1", "store-2", "store-3")


def test_demo_sends_history_and_prints_the_dashboard(
    tmp_path: Path, nps_edge_bin: str, micropython_bin: str
) -> None:
    port = free_port()
    done = subprocess.run(
        [
            nps_edge_bin,
            "demo",
            "--history",
            "2d",
            "--devices",
            "0",
            "--exit-when-ready",
            "--data",
            str(tmp_path / "demo"),
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Dashboard:  http://127.0.0.1:{port}/" in done.stdout
    token = re.search(r"Login token \(operator\): (\S+)", done.stdout)
    assert token and len(token.group(1)) > 20
    for site in DEMO_SITES:
        assert f"broker (amqtt) of {site} on 127.0.0.1:" in done.stderr
        assert f"starting gateway gw-{site} (token bound to {site}" in done.stderr
    shown = re.search(r"server has all (\d+) prompts", done.stderr)
    assert shown and int(shown.group(1)) > 50, done.stderr[-3000:]
    # Everything it started is stopped again.
    assert "stopping gateway" in done.stderr and "stopping server" in done.stderr
    # Each site's events went through its own gateway and none was refused by the server
    # (a gateway token is bound to one site: another site's events would be dead letters).
    for site in DEMO_SITES:
        status = gateway_status(nps_edge_bin, tmp_path / "demo" / f"gateway-{site}.db")
        assert status["forwarded"] > 0 and status["depth"] == 0, status
        assert status["dead_letters"]["rows"] == 0, status


def test_demo_rejects_a_bad_history(nps_edge_bin: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [nps_edge_bin, "demo", "--history", "a month", "--data", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "30d" in done.stderr


def gateway_status(nps_edge_bin: str, store: Path) -> dict:
    done = subprocess.run(
        [nps_edge_bin, "gateway", "status", "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict = json.loads(done.stdout)
    return result


def all_cmdlines() -> Iterator[tuple[int, bytes]]:
    """Every process's argv as any local user sees it (ps, /proc/PID/cmdline)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes()
            except OSError:  # ended meanwhile
                continue


def children_of(pid: int) -> list[int]:
    found = []
    for other, _ in all_cmdlines():
        try:
            fields = (Path("/proc") / str(other) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(other)
    return found


def environ_of(pid: int) -> dict[str, str]:
    raw = (Path("/proc") / str(pid) / "environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def listening_hosts(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) in state LISTEN on port."""
    hosts = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                hosts.add(address)
    return hosts


def test_demo_keeps_secrets_out_of_argv_and_logs_and_its_files_private(
    tmp_path: Path, nps_edge_bin: str, micropython_bin: str
) -> None:
    """The attack: another local user reads `ps` and the demo's folder, a neighbour on the
    network connects to its brokers. None of it yields a token or a connection."""
    data = tmp_path / "demo"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    args = [nps_edge_bin, "demo", "--history", "0", "--devices", "1", "--data", str(data)]
    args += ["--port", str(free_port())]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        demo = subprocess.Popen(args, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        try:
            wait_until(lambda: "live devices at" in err.read_text(), 180, "the live devices")
        except ProcessError:
            pytest.fail(err.read_text()[-3000:])
        operator = re.search(r"Login token \(operator\): (\S+)", out.read_text())
        assert operator is not None
        # The live device's first events reach the server through store-1's gateway.
        store = data / "gateway-store-1.db"
        wait_until(lambda: gateway_status(nps_edge_bin, store)["forwarded"] > 0, 120, "events")
        gateways = [p for p in children_of(demo.pid) if b"gateway" in dict(all_cmdlines())[p]]
        tokens = {environ_of(p).get("NPS_EDGE_TOKEN", "") for p in gateways}
        assert len(gateways) == len(DEMO_SITES) and len(tokens) == len(DEMO_SITES)
        assert all(t.startswith("npsg_") for t in tokens), "a gateway without its token"
        secrets = [*tokens, operator.group(1)]
        for pid, cmdline in all_cmdlines():
            for secret in secrets:
                assert secret.encode() not in cmdline, f"a token in argv of process {pid}"
        # The brokers take anonymous clients, so they listen on the loopback address only.
        ports = [int(p) for p in re.findall(r"on 127\.0\.0\.1:(\d+): listens", err.read_text())]
        assert len(ports) == len(DEMO_SITES)
        for port in ports:
            assert listening_hosts(port) == {"0100007F"}, port
    finally:
        demo.send_signal(signal.SIGTERM)
        code = demo.wait(60)
    assert code == 0, err.read_text()[-3000:]
    private = [data, *data.rglob("*")]
    assert len(private) > 15
    for path in private:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"
        if path.is_file():
            body = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in body, f"a token in {path}"
    assert any(p.name.startswith("gateway-") and p.suffix == ".log" for p in private)


def test_an_earlier_runs_files_are_made_private(tmp_path: Path) -> None:
    """--no-fresh keeps the data folder: what an older demo left world-readable is chmodded."""
    data = tmp_path / "demo"
    (data / "history").mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    old = data / "server.db"
    old.write_text("from an older demo")
    old.chmod(0o644)
    (data / "history" / "nps-1.json").write_text("{}")
    (data / "link").symlink_to(old)
    make_private(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "history").stat().st_mode) == 0o700
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "history" / "nps-1.json").stat().st_mode) == 0o600


def test_only_a_loopback_dashboard_goes_without_a_warning() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("no-such-host.invalid")
