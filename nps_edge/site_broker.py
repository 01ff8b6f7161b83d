"""Running a generated site broker: `mosquitto -c DIR/mosquitto.conf`, and its reload.

The tests and anyone trying a site on one machine start the broker exactly as
docs/broker.md tells an installer to, so what is proven is what is shipped.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from nps_edge.broker import Broker, BrokerError, mosquitto_binary, wait_for_port

RELOADED = "Reloading config."  # what Mosquitto 2 logs when it takes a SIGHUP


def start_site_broker(conf_dir: Path, *, port: int, host: str = "127.0.0.1") -> Broker:
    """Start Mosquitto on conf_dir/mosquitto.conf; its log (stderr) goes to conf_dir's sibling."""
    binary = mosquitto_binary()
    if binary is None:
        raise BrokerError("mosquitto is not installed: apt-get install mosquitto")
    log = conf_dir.with_name(conf_dir.name + "-mosquitto.log")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary, "-c", str(conf_dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        wait_for_port(host, port, proc=proc)
    except BrokerError as err:
        proc.kill()
        proc.wait()
        raise BrokerError(f"mosquitto failed to start: {err}\n{log.read_text()[-2000:]}") from None
    return Broker("mosquitto", host, port, proc, conf_dir, log)


def reload(broker: Broker, timeout: float = 10.0) -> None:
    """SIGHUP, then wait (bounded) until the broker logs that it reloaded."""
    assert broker.log is not None
    before = broker.log.read_text().count(RELOADED)
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while broker.log.read_text().count(RELOADED) <= before:
        if broker.proc.poll() is not None or time.monotonic() > deadline:
            raise BrokerError(f"mosquitto did not reload: {broker.log.read_text()[-2000:]}")
        time.sleep(0.05)
