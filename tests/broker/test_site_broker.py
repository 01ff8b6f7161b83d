"""The attacks of issue 12 against a real Mosquitto run from `nps-edge broker config` output.

Who reaches the broker: anyone on the site's network (no login, a guessed one), a
device's stolen login (device A trying to be, read or kick device B, or take the
gateway's session), and the gateway's login (reads devices, must not be one).
A refused publish is acknowledged and dropped by Mosquitto (MQTT 3.1.1 has no
negative PUBACK), so "never delivered" is shown by a later marker arriving alone.
"""

from __future__ import annotations

import json
import os
import pwd
import stat

import pytest

from nps_edge.site_broker import reload
from tests.broker.site import Site

FEEDBACK = "nps/v1/{}/feedback"
GATEWAY_TOPICS = ("nps/v1/+/feedback", "nps/v1/+/telemetry", "nps/v1/+/status")
pytestmark = pytest.mark.slow


def test_anonymous_and_wrong_passwords_are_refused(site: Site) -> None:
    site.start()
    assert site.login(None, None).answer().is_failure
    assert site.device("dev-a", "not-the-password").answer().is_failure
    assert site.device("dev-a", site.passwords["dev-b"]).answer().is_failure
    assert site.login("gw-site-x", "guess").answer().is_failure
    assert site.login("nobody", "x").answer().is_failure
    site.device("dev-a").connected()  # the right password still works


def test_a_device_publishes_only_as_itself(site: Site) -> None:
    site.start()
    gateway = site.gateway().connected()
    gateway.subscribe(*GATEWAY_TOPICS)
    a = site.device("dev-a").connected()
    a.publish(FEEDBACK.format("dev-a"), b"a-own")
    assert gateway.wait_message(b"a-own") == [("nps/v1/dev-a/feedback", b"a-own")]

    for topic in ("feedback", "telemetry", "status"):
        a.publish(f"nps/v1/dev-b/{topic}", b"forged", retain=topic == "status")
    a.publish("nps/v1/dev-b/cmd", b"forged")  # not even to B's command topic
    a.publish("nps/v1/dev-a/cmd", b"forged")  # nor its own: only the gateway writes cmd
    a.publish(FEEDBACK.format("dev-a"), b"marker")
    assert gateway.wait_message(b"marker")[-2:] == [
        ("nps/v1/dev-a/feedback", b"a-own"),
        ("nps/v1/dev-a/feedback", b"marker"),
    ]
    # A retained forgery would reach a gateway that subscribes later: none was kept.
    late = site.login(*site.gateway_login).connected()  # takes over the gateway's session
    late.subscribe("nps/v1/+/status")
    a.publish("nps/v1/dev-a/status", b"late-marker", retain=True)
    assert [p for _, p in late.wait_message(b"late-marker")] == [b"late-marker"]


def test_a_device_reads_only_its_own_command_topic(site: Site) -> None:
    site.start()
    b = site.device("dev-b").connected()
    b.publish("nps/v1/dev-b/status", b"b-retained", retain=True)
    a = site.device("dev-a").connected()
    a.subscribe("#", "nps/v1/dev-b/#", "nps/v1/+/feedback", "$SYS/#", "nps/v1/dev-a/cmd")
    for topic in ("feedback", "telemetry", "status"):
        b.publish(f"nps/v1/dev-b/{topic}", b"b-secret")
    gateway = site.gateway().connected()
    gateway.publish("nps/v1/dev-b/cmd", b"b-command")
    gateway.publish("nps/v1/dev-a/cmd", b"a-marker")
    assert a.wait_message(b"a-marker") == [("nps/v1/dev-a/cmd", b"a-marker")]


@pytest.mark.parametrize("taken", ["dev-b", "gw-site-x"])
def test_a_device_using_another_client_id_gets_its_own(site: Site, taken: str) -> None:
    """use_username_as_clientid: B (or the gateway's persistent session) is not kicked."""
    site.start()
    gateway = site.gateway(clean_session=False).connected()
    gateway.subscribe(*GATEWAY_TOPICS)
    b = site.device("dev-b", client_id="dev-b").connected()
    a = site.device("dev-a", client_id=taken, clean_session=False).connected()
    a.publish(FEEDBACK.format("dev-a"), b"a-after-takeover")
    b.publish(FEEDBACK.format("dev-b"), b"b-still-here")
    got = gateway.wait_message(b"b-still-here")
    assert ("nps/v1/dev-a/feedback", b"a-after-takeover") in got
    assert b.disconnects == [] and gateway.disconnects == []
    assert "as dev-a (p2, c0, k30, u'dev-a')" in site.broker.log.read_text()  # type: ignore[union-attr]


def test_the_gateway_reads_devices_writes_cmd_and_cannot_be_a_device(site: Site) -> None:
    site.start()
    gateway = site.gateway().connected()
    gateway.subscribe(*GATEWAY_TOPICS)
    a = site.device("dev-a").connected()
    a.subscribe("nps/v1/dev-a/cmd")
    b = site.device("dev-b").connected()
    a.publish("nps/v1/dev-a/telemetry", b"a-telemetry")
    b.publish("nps/v1/dev-b/status", b"b-status", retain=True)
    gateway.wait_message(b"b-status")
    assert ("nps/v1/dev-a/telemetry", b"a-telemetry") in gateway.messages

    gateway.publish("nps/v1/dev-a/cmd", b"a-command")
    a.wait_message(b"a-command")
    # Its own subscription would deliver these back to it were they allowed.
    gateway.publish(FEEDBACK.format("dev-a"), b"gateway-as-a")
    gateway.publish(FEEDBACK.format("gw-site-x"), b"gateway-as-itself")
    gateway.publish("nps/v1/dev-a/status", b"gateway-status", retain=True)
    b.publish(FEEDBACK.format("dev-b"), b"marker")
    got = [p for _, p in gateway.wait_message(b"marker")]
    assert got == [b"b-status", b"a-telemetry", b"marker"] or got == [
        b"a-telemetry",
        b"b-status",
        b"marker",
    ]


def test_a_revoked_device_is_refused_after_config_and_sighup(site: Site) -> None:
    site.start()
    gateway = site.gateway().connected()
    gateway.subscribe(*GATEWAY_TOPICS)
    a = site.device("dev-a").connected()
    b = site.device("dev-b").connected()
    gateway_password = site.gateway_login[1]

    site.revoke("dev-a")
    done = site.configure()
    assert "1 devices of site site-x + gw-site-x; 1 revoked left out" in done.stderr
    assert site.gateway_login[1] == gateway_password  # kept: the running gateway stays valid
    assert "dev-a:" not in (site.out / "passwd").read_text()
    reload(site.broker)  # type: ignore[arg-type]

    a.wait(lambda: bool(a.disconnects), "the revoked device is still connected")
    assert site.device("dev-a").answer().is_failure
    b.publish(FEEDBACK.format("dev-b"), b"b-after-reload")
    gateway.wait_message(b"b-after-reload")
    assert b.disconnects == [] and gateway.disconnects == []
    assert site.gateway().connected()  # its password, newly salted, still matches


def test_another_sites_device_has_no_login_here(site: Site) -> None:
    site.add("dev-y", site="site-y")
    added = site.cli("add", "--db", site.db, "--site", site.name, "--id", "dev-c", group="device")
    site.passwords["dev-c"] = json.loads(added.stdout)["password"]  # as `device add` shows it
    site.start()
    assert site.device("dev-y").answer().is_failure
    assert "dev-y" not in (site.out / "passwd").read_text()
    site.device("dev-c").connected()


def test_files_are_private_and_the_broker_runs_unprivileged(site: Site) -> None:
    broker = site.start()
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in site.out.iterdir()}
    assert mode == {
        "mosquitto.conf": 0o600,
        "passwd": 0o600,
        "acl": 0o600,
        "gateway.toml": 0o600,
        "data": 0o700,
    }
    if os.geteuid() != 0:
        return
    mosquitto = pwd.getpwnam("mosquitto").pw_uid
    owners = {p.name: p.stat().st_uid for p in site.out.iterdir()}
    assert owners == {
        "mosquitto.conf": mosquitto,
        "passwd": mosquitto,
        "acl": mosquitto,
        "data": mosquitto,
        "gateway.toml": 0,  # the gateway's secret: not the broker's to read
    }
    status = (f"/proc/{broker.proc.pid}/status",)
    uid_line = next(ln for ln in open(status[0]).read().splitlines() if ln.startswith("Uid:"))
    assert set(uid_line.split()[1:]) == {str(mosquitto)}  # root was dropped
    site.device("dev-a").connected()  # and it read the files as that user
