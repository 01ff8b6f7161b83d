"""The whole gateway in-process against a real Mosquitto (shipped config), fake server."""

from __future__ import annotations

import json
import threading

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from nps_edge.broker import free_port, start_mosquitto


def test_events_flow_from_broker_to_server_bad_ones_to_dead_letters(
    mqtt_broker, run_gateway, fake_server, make
):
    gw = run_gateway(mqtt_broker.address, fake_server.client())
    good = [make.feedback(seq=s) for s in range(1, 201)]
    messages = [("nps/v1/nps-a1b2c3/feedback", make.payload(e)) for e in good]
    bad = [
        ("nps/v1/nps-a1b2c3/feedback", b"not json at all"),
        ("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=900, score=11))),
        ("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=901, score=True))),
        ("nps/v1/nps-other1/feedback", make.payload(make.feedback(seq=902))),
        ("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=903, pad="z" * 2100))),
    ]
    for i, m in enumerate(bad):  # scattered among the good ones
        messages.insert(20 + 40 * i, m)
    messages.append(("nps/v1/nps-a1b2c3/telemetry", make.payload(make.telemetry(seq=201))))
    make.publish(mqtt_broker.address, messages)

    make.wait_until(lambda: len(fake_server.received) == 201, what="201 events at the server")
    assert [e["seq"] for e in fake_server.received] == list(range(1, 202))
    make.wait_until(lambda: gw.stats().depth == 0, what="store drained")
    stats = gw.stats()
    assert stats.counters["dead_letters:edge"] == 5
    reasons = " | ".join(d[3] for d in gw.dead_letters(10))
    for expected in ("not JSON", "score", "does not match topic", "too large"):
        assert expected in reasons
    assert stats.counters["received"] == 206
    assert stats.counters["forwarded"] == 201


def test_presence_from_retained_status_and_last_will(mqtt_broker, run_gateway, fake_server, make):
    make.publish(
        mqtt_broker.address,
        [("nps/v1/nps-a1b2c3/status", b'{"online": true, "fw": "1.2.0", "boot": 7}')],
        retain=True,
    )
    run_gateway(mqtt_broker.address, fake_server.client())  # subscribes after: gets the retained
    make.wait_until(lambda: fake_server.presence, what="presence forwarded")
    first = fake_server.presence[0]
    assert (first.device, first.online, first.fw, first.boot) == ("nps-a1b2c3", True, "1.2.0", 7)
    make.publish(mqtt_broker.address, [("nps/v1/nps-a1b2c3/status", b'{"online": false}')])
    make.wait_until(lambda: len(fake_server.presence) == 2, what="offline forwarded")
    assert fake_server.presence[1].online is False


def test_broker_keeps_events_while_the_gateway_is_away(
    mqtt_broker, run_gateway, fake_server, make, tmp_path
):
    gw = run_gateway(mqtt_broker.address, fake_server.client())
    gw.stop()  # the persistent session stays on the broker
    make.wait_until(lambda: not gw.receiver.connected.is_set(), what="gateway gone")
    make.publish(
        mqtt_broker.address,
        [("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=s))) for s in range(1, 51)],
    )
    run_gateway(mqtt_broker.address, fake_server.client())
    make.wait_until(lambda: len(fake_server.received) == 50, what="queued events delivered")
    assert [e["seq"] for e in fake_server.received] == list(range(1, 51))


def test_server_down_the_store_grows_then_drains_in_order(
    mqtt_broker, run_gateway, fake_server, make
):
    fake_server.script = [httpx.ConnectError("down")] * 3 + [503] * 2
    gw = run_gateway(mqtt_broker.address, fake_server.client())
    for lane in gw.forwarder.forwarders:
        lane.backoff.base_s = 0.01
    make.publish(
        mqtt_broker.address,
        [("nps/v1/nps-a1b2c3/feedback", make.payload(make.feedback(seq=s))) for s in range(1, 301)],
    )
    make.wait_until(lambda: len(fake_server.received) == 300, what="all 300 after the outage")
    assert [e["seq"] for e in fake_server.received] == list(range(1, 301))
    assert gw.metrics.forward_errors.labels("transport")._value.get() == 3


def test_broker_restart_keeps_the_session_and_its_queue(
    mqtt_broker, run_gateway, fake_server, make
):
    run_gateway(mqtt_broker.address, fake_server.client())
    topic = "nps/v1/nps-a1b2c3/feedback"
    make.publish(mqtt_broker.address, [(topic, make.payload(make.feedback(seq=s))) for s in (1, 2)])
    make.wait_until(lambda: len(fake_server.received) == 2, what="before the restart")
    mqtt_broker.stop()  # clean shutdown: Mosquitto saves sessions and queues
    restarted = start_mosquitto(mqtt_broker.workdir, port=mqtt_broker.port)
    try:
        # published before the gateway is back: queued in its restored session
        make.publish(
            restarted.address, [(topic, make.payload(make.feedback(seq=s))) for s in range(3, 53)]
        )
        make.wait_until(lambda: len(fake_server.received) == 52, what="after the restart")
        assert [e["seq"] for e in fake_server.received] == list(range(1, 53))
    finally:
        restarted.stop()


def test_metrics_endpoint_serves_the_documented_metrics(
    mqtt_broker, run_gateway, fake_server, make
):
    port = free_port()
    gw = run_gateway(mqtt_broker.address, fake_server.client(), metrics_port=port)
    topic = "nps/v1/nps-a1b2c3/feedback"
    make.publish(mqtt_broker.address, [(topic, make.payload(make.feedback(seq=1))), (topic, b"x")])
    make.wait_until(lambda: gw.stats().counters.get("forwarded") == 1, what="forwarded")
    text = make.wait_until(
        lambda: (
            (t := httpx.get(f"http://127.0.0.1:{port}/metrics").text)
            and "nps_gateway_forwarded_total 1.0" in t
            and t
        ),
        what="metrics updated",
    )
    for line in (
        'nps_gateway_received_total{kind="feedback"} 2.0',
        "nps_gateway_committed_total 1.0",
        'nps_gateway_dead_letters_total{source="edge"} 1.0',
        "nps_gateway_queue_depth 0.0",
        "nps_gateway_forward_latency_seconds_count",
        "nps_gateway_oldest_event_age_seconds",
        "nps_gateway_broker_connected 1.0",
        "nps_gateway_forwarding_halted 0.0",
    ):
        assert line in text


def test_sigterm_finishes_the_batch_in_hand(mqtt_broker, run_gateway, fake_server, make):
    in_flight = threading.Event()
    release = threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/ingest":
            in_flight.set()
            release.wait(10)
        return fake_server.handler(request)

    client = httpx.Client(
        base_url="http://server.test",
        transport=httpx.MockTransport(slow),
        headers={"Authorization": "Bearer good"},
    )
    gw = run_gateway(mqtt_broker.address, client)
    topic = "nps/v1/nps-a1b2c3/feedback"
    make.publish(mqtt_broker.address, [(topic, make.payload(make.feedback(seq=s))) for s in (1, 2)])
    assert in_flight.wait(10)
    stopper = threading.Thread(target=gw.stop)
    stopper.start()  # what the SIGTERM handler does
    release.set()
    stopper.join()
    make.wait_until(lambda: not gw.receiver.connected.is_set(), what="shut down")
    make.wait_until(lambda: gw.stats().counters.get("forwarded", 0) >= 1, what="batch recorded")
    stats = gw.stats()
    assert stats.depth + stats.counters["forwarded"] == 2  # the answered batch was deleted
    assert {e["seq"] for e in fake_server.received} >= {1}


def test_gateway_started_before_its_broker_connects_when_it_comes(
    run_gateway, fake_server, make, tmp_path
):
    port = free_port()
    gw = run_gateway(f"127.0.0.1:{port}", fake_server.client(), wait=False)
    broker = start_mosquitto(tmp_path / "late-broker", port=port)
    try:
        make.wait_until(gw.receiver.subscribed.is_set, what="connected to the late broker")
        topic = "nps/v1/nps-a1b2c3/feedback"
        make.publish(broker.address, [(topic, make.payload(make.feedback(seq=1)))])
        make.wait_until(lambda: len(fake_server.received) == 1, what="delivered")
    finally:
        broker.stop()


def test_acks_reach_the_device_at_qos_0(mqtt_broker, run_gateway, fake_server, make):
    """The ack is cheap at every hop (gateway/acks.py ACK_QOS): a device subscribed at
    QoS 1, as the firmware is, gets it at QoS 0 and owes no PUBACK."""
    got: list[mqtt.MQTTMessage] = []
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="nps-a1b2c3")
    device.on_message = lambda client, userdata, message: got.append(message)
    host, port = mqtt_broker.address.rsplit(":", 1)
    device.connect(host, int(port))
    device.subscribe("nps/v1/nps-a1b2c3/cmd", qos=1)
    device.loop_start()
    try:
        run_gateway(mqtt_broker.address, fake_server.client())
        topic = "nps/v1/nps-a1b2c3/feedback"
        make.publish(
            mqtt_broker.address, [(topic, make.payload(make.feedback(seq=s))) for s in (1, 2, 3)]
        )
        make.wait_until(lambda: got, what="the gateway's ack at the device")
    finally:
        device.loop_stop()
        device.disconnect()
    acked = [json.loads(m.payload)["ack"] for m in got]
    assert sorted(s for r in acked for lo, hi in r for s in range(lo, hi + 1)) == [1, 2, 3]
    assert {m.qos for m in got} == {0}
    assert {m.topic for m in got} == {"nps/v1/nps-a1b2c3/cmd"}
