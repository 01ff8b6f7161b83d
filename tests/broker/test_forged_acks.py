"""A forged ack would make a device forget events it still holds (docs/security.md): on the
site broker from `nps-edge broker config` only the gateway's login writes a device's cmd
topic. A refused publish is PUBACKed and dropped (MQTT 3.1.1 has no negative PUBACK), so
"never delivered" is shown by the gateway's marker arriving alone."""

from __future__ import annotations

import pytest

from tests.broker.site import Site

pytestmark = pytest.mark.slow
FORGED = b'{"ack":[[1,4294967295]]}'  # "forget everything you hold"


def test_only_the_gateway_login_acks_a_device(site: Site) -> None:
    site.start()
    b = site.device("dev-b", clean_session=False).connected()  # as the firmware: persistent
    b.subscribe("nps/v1/dev-b/cmd")
    a = site.device("dev-a").connected()
    a.publish("nps/v1/dev-b/cmd", FORGED)  # another device's login
    a.publish("nps/v1/dev-b/cmd", FORGED, retain=True)
    b.publish("nps/v1/dev-b/cmd", FORGED)  # nor the device itself: it only reads cmd
    gateway = site.gateway().connected()
    gateway.publish("nps/v1/dev-b/cmd", b'{"ack":[[1,1]]}')
    assert b.wait_message(b'{"ack":[[1,1]]}') == [("nps/v1/dev-b/cmd", b'{"ack":[[1,1]]}')]


def test_a_forged_ack_is_not_queued_for_a_device_that_is_away(site: Site) -> None:
    site.start()
    b = site.device("dev-b", clean_session=False).connected()
    b.subscribe("nps/v1/dev-b/cmd")
    b.close()  # offline: the broker queues QoS 1 messages for its session
    a = site.device("dev-a").connected()
    a.publish("nps/v1/dev-b/cmd", FORGED)
    site.gateway().connected().publish("nps/v1/dev-b/cmd", b"marker")
    back = site.device("dev-b", clean_session=False).connected()
    assert back.wait_message(b"marker") == [("nps/v1/dev-b/cmd", b"marker")]
