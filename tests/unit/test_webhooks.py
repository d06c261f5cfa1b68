"""The pure parts of the webhooks: signing and verifying, the events' JSON, back-off, the
settings, and the emitter's bookkeeping against the memory outbox."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import pytest

from hubbub.config import Settings
from hubbub.core.types import ClientInfo, Publication
from hubbub.engines.eventoutbox import MemoryEventOutbox, OutboxEvent
from hubbub.errors import ConfigError
from hubbub.webhooks import sign, verify
from hubbub.webhooks.delivery import Deliverer, backoff, event_type, webhook_target
from hubbub.webhooks.emitter import Events
from hubbub.webhooks.events import body, event_json, publication_id
from tests.support.timing import eventually

SECRET = "s" * 32
URL = "http://127.0.0.1:9/hook"


def test_sign_is_the_hex_hmac_sha256_of_the_body() -> None:
    raw = b'[{"id":"1"}]'
    expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert sign(raw, SECRET) == "sha256=" + expected


@pytest.mark.parametrize(
    ("body_", "header", "secret", "ok"),
    [
        (b"[]", sign(b"[]", SECRET), SECRET, True),
        (b"[]", " " + sign(b"[]", SECRET) + " ", SECRET, True),
        (b"[ ]", sign(b"[]", SECRET), SECRET, False),  # the body changed
        (b"[]", sign(b"[]", SECRET), "t" * 32, False),  # another secret
        (b"[]", sign(b"[]", SECRET).removeprefix("sha256="), SECRET, False),  # no prefix
        (b"[]", sign(b"[]", SECRET).upper(), SECRET, False),
        (b"[]", None, SECRET, False),
        (b"[]", "", SECRET, False),
        (b"[]", sign(b"[]", ""), "", False),  # no secret: nothing verifies
        (b"[]", "sha256=\u00e9", SECRET, False),
    ],
)
def test_verify(body_: bytes, header: str | None, secret: str, ok: bool) -> None:
    assert verify(body_, header, secret) is ok


def test_event_json_puts_client_json_in_as_it_is() -> None:
    info = ClientInfo("c1", "ann", '{"name":"Ann \\u00e9"}')
    text = event_json("connect", "e1", 123, "node-1", client=info)
    assert json.loads(text) == {
        "id": "e1",
        "type": "connect",
        "time": 123,
        "node": "node-1",
        "client": "c1",
        "user": "ann",
        "info": {"name": "Ann \u00e9"},
    }
    pub = Publication(data='{"n": [1, 2]}', offset=7, info=info)
    text = event_json("publish", "e2", 5, "n", client=info, channel="ch", pub=pub)
    assert '"data":{"n": [1, 2]}' in text  # verbatim, spacing kept
    assert json.loads(text)["offset"] == 7
    text = event_json("disconnect", "e3", 5, "n", client=ClientInfo("c", ""), code=3000, reason="x")
    assert json.loads(text) == {
        "id": "e3",
        "type": "disconnect",
        "time": 5,
        "node": "n",
        "client": "c",
        "user": "",
        "code": 3000,
        "reason": "x",
    }
    assert text.isascii()
    assert json.loads(body([text, text])) == [json.loads(text)] * 2


def test_publication_ids_repeat_for_the_same_publication() -> None:
    pub = Publication(data="1", offset=3, time_ms=99)
    assert publication_id("a", pub) == publication_id("a", pub)
    assert publication_id("a", pub) != publication_id("b", pub)
    assert publication_id("a", Publication(data="1")) is None  # no offset: a fresh id


def test_backoff_is_full_jitter_up_to_the_maximum() -> None:
    assert backoff(1, 30.0, lambda: 1.0) == 0.5
    assert backoff(3, 30.0, lambda: 1.0) == 2.0
    assert backoff(60, 30.0, lambda: 1.0) == 30.0
    assert backoff(60, 30.0, lambda: 0.0) == 0.0
    assert all(0 <= backoff(5, 1.0) <= 1.0 for _ in range(100))


def test_event_type_is_read_from_the_payload() -> None:
    assert event_type(event_json("channel_vacated", "i", 1, "n", channel="x")) == "channel_vacated"
    assert event_type("{}") == "?"


def test_settings() -> None:
    s = Settings(webhook_url=URL, webhook_secret=SECRET, webhook_events="connect, disconnect")
    assert s.webhook_events == ("connect", "disconnect")
    assert "publish" not in Settings().webhook_events
    with pytest.raises(ValueError, match="webhook_secret"):
        Settings(webhook_url=URL)
    with pytest.raises(ValueError, match="http"):
        Settings(webhook_url="ftp://x/", webhook_secret=SECRET)
    with pytest.raises(ValueError):
        Settings(webhook_url=URL, webhook_secret="short")
    with pytest.raises(ValueError):
        Settings(webhook_events=("connect", "nonsense"))
    assert Settings(webhook_url="", webhook_secret="").webhook_url is None


def test_a_missing_secret_is_a_config_error_naming_both_keys() -> None:
    from hubbub.config import load_settings

    with pytest.raises(ConfigError, match="webhook_url is set but webhook_secret is not"):
        load_settings({"webhook_url": URL}, environ={})


def events(**settings: object) -> tuple[Events, MemoryEventOutbox]:
    outbox = MemoryEventOutbox()
    s = Settings(webhook_url=URL, webhook_secret=SECRET, **settings)  # type: ignore[arg-type]
    return Events.of(s, outbox, "node-1"), outbox


async def claimed(outbox: MemoryEventOutbox) -> list[dict[str, object]]:
    got = await outbox.claim("webhook", 100, time.time() + 1, 30)
    return [json.loads(e.payload) for e in got]


async def test_events_are_off_without_a_url() -> None:
    outbox = MemoryEventOutbox()
    off = Events.of(Settings(), outbox, "n")
    assert not off.enabled
    await off.connected(ClientInfo("c", "u"))
    off.channel_used("x")
    assert await outbox.depth("webhook") == 0


async def test_disconnects_only_follow_a_connect() -> None:
    ev, outbox = events()
    await ev.disconnected(ClientInfo("never", "u"), 3000, "gone")
    await ev.connected(ClientInfo("c1", "u"))
    await ev.disconnected(ClientInfo("c1", "u"), 3000, "gone")
    await ev.disconnected(ClientInfo("c1", "u"), 3000, "again")
    assert [(e["type"], e["client"]) for e in await claimed(outbox)] == [
        ("connect", "c1"),
        ("disconnect", "c1"),
    ]
    assert ev.emitted == {"connect": 1, "disconnect": 1}


async def test_only_the_types_asked_for_and_publish_per_namespace() -> None:
    ev, outbox = events(webhook_events=("subscribe",))
    info = ClientInfo("c1", "u")
    await ev.connected(info)
    await ev.subscribed("ch", info)
    pub = Publication(data="{}", offset=1)
    await ev.published("ch", pub, Settings().channel)  # no webhook_publish: nothing
    with_publish = Settings().channel.model_copy(update={"webhook_publish": True})
    await ev.published("ch", pub, with_publish)
    await ev.published("ch", pub, with_publish)  # the same publication (idempotent repeat)
    assert [e["type"] for e in await claimed(outbox)] == ["subscribe", "publish"]


async def test_a_full_outbox_drops_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    ev, outbox = events(webhook_outbox_size=2)
    for n in range(4):
        await ev.connected(ClientInfo(f"c{n}", "u"))
    assert await outbox.depth("webhook") == 2
    assert ev.dropped["full"] == 2
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2 and "(connect)" in dropped[0].getMessage()


async def test_expired_events_are_dropped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = MemoryEventOutbox()
    deliverer = Deliverer(
        outbox,
        webhook_target(URL, SECRET),
        timeout=1,
        batch_size=10,
        max_backoff=1,
        max_age=60,
        concurrency=1,
    )
    now = time.time()
    old = OutboxEvent("webhook", "old", event_json("connect", "old", 1, "n"), now - 61)
    new = OutboxEvent("webhook", "new", event_json("connect", "new", 1, "n"), now)
    await outbox.add([old, new], now)
    batch = await outbox.claim("webhook", 10, now, 30)
    with caplog.at_level(logging.ERROR):
        kept, pause = await deliverer._drop_expired(batch, now)
    assert [e.id for e in kept] == ["new"] and pause == 0
    assert deliverer.dropped["max_age"] == 1
    assert await outbox.depth("webhook") == 1
    assert any("old (connect)" in r.getMessage() for r in caplog.records)


async def test_occupancy_coalesces_and_reaps_dead_nodes(caplog: pytest.LogCaptureFixture) -> None:
    ev, outbox = events(webhook_node_ttl=0.3)
    await ev.start()
    assert any("outbox is in memory" in r.getMessage() for r in caplog.records)
    try:
        ev.channel_used("a")
        ev.channel_unused("a")  # left again before it was applied: nothing changed
        ev.channel_used("b")
        await outbox.occupy("c", "dead-node", [], 0)
        await outbox.alive("dead-node", 1.0)

        async def reaped() -> bool:
            return not await outbox.channels_of("dead-node")

        await eventually(reaped, what="the dead node's channels vacated")
        got = {(e["type"], e["channel"]) for e in await claimed(outbox)}
        assert got == {("channel_occupied", "b"), ("channel_vacated", "c")}
        assert await outbox.dead_nodes(time.time()) == []
    finally:
        await ev.stop()
    assert await outbox.dead_nodes(time.time()) == ["node-1"]  # gave up its liveness


async def test_a_target_gets_only_the_events_it_accepts() -> None:
    outbox = MemoryEventOutbox()
    only_rooms = replace(
        webhook_target(URL, SECRET), name="rooms", accepts=lambda kind, ch: ch == "rooms:a"
    )
    settings = Settings(webhook_url=URL, webhook_secret=SECRET)
    ev = Events(settings, outbox, "n", targets=[webhook_target(URL, SECRET), only_rooms])
    info = ClientInfo("c", "u")
    await ev.subscribed("rooms:a", info)
    await ev.subscribed("news", info)
    assert await outbox.depth("webhook") == 2
    (event,) = await outbox.claim("rooms", 10, time.time() + 1, 30)
    assert json.loads(event.payload)["channel"] == "rooms:a"


async def test_a_failing_backend_is_not_flooded_with_a_backlog() -> None:
    """1,000 events waiting, a backend answering 500: the deliverer paces its requests with
    the back-off of its failures in a row instead of replaying the backlog at full speed."""
    from tests.support.webhook_receiver import Receiver

    receiver = Receiver(SECRET)
    receiver.mode = "fail"
    await receiver.up()
    outbox = MemoryEventOutbox()
    now = time.time()
    await outbox.add(
        [
            OutboxEvent("webhook", f"e{n}", event_json("connect", f"e{n}", 1, "n"), now)
            for n in range(1000)
        ],
        now,
    )
    deliverer = Deliverer(
        outbox,
        webhook_target(receiver.url, SECRET),
        timeout=1,
        batch_size=10,
        max_backoff=0.2,
        max_age=60,
        concurrency=4,
    )
    deliverer.start()
    try:
        await asyncio.sleep(1.0)
    finally:
        await deliverer.stop()
        await receiver.down()
    assert 1 <= receiver.requests < 150, receiver.requests
    assert 0 < deliverer.retried <= 10 * receiver.requests
    assert await outbox.depth("webhook") == 1000


def deliverer_of(outbox: MemoryEventOutbox, url: str, **kw: float) -> Deliverer:
    params: dict[str, float] = {"timeout": 3, "max_backoff": 0.2, "max_age": 60} | kw
    return Deliverer(
        outbox,
        webhook_target(url, SECRET),
        batch_size=10,
        concurrency=2,
        timeout=params["timeout"],
        max_backoff=params["max_backoff"],
        max_age=params["max_age"],
    )


def connect_event(eid: str, created: float) -> OutboxEvent:
    return OutboxEvent("webhook", eid, event_json("connect", eid, 1, "n"), created)


@pytest.mark.parametrize("trickle", [None, 0.05])
async def test_a_2xx_whose_body_never_ends_settles_its_events_once(trickle: float | None) -> None:
    """A receiver answering 200 with a body it never finishes (silent, or trickled): the
    status decides; each event arrives once and leaves the outbox (no wait for the timeout,
    no retry)."""
    from tests.support.webhook_receiver import EndlessBodyReceiver

    receiver = EndlessBodyReceiver(trickle)
    await receiver.up()
    outbox = MemoryEventOutbox()
    now = time.time()
    await outbox.add([connect_event(f"e{n}", now) for n in range(25)], now)
    deliverer = deliverer_of(outbox, receiver.url)
    deliverer.start()
    try:

        async def settled() -> bool:
            return await outbox.depth("webhook") == 0

        await eventually(settled, what="the events settled")
        assert deliverer.delivered == 25
    finally:
        await deliverer.stop()
        await receiver.down()
    assert receiver.seen == {f"e{n}": 1 for n in range(25)}
    assert deliverer.retried == 0 and deliverer.failures == 0


class FlakyOutbox(MemoryEventOutbox):
    """A memory outbox whose next ``fail_acks`` acks raise an unexpected exception (the store
    went away), counting its claims."""

    def __init__(self, fail_acks: int) -> None:
        super().__init__()
        self.fail_acks = fail_acks
        self.claims = 0

    async def claim(self, target: str, limit: int, now: float, lease: float) -> list[OutboxEvent]:
        self.claims += 1
        return await super().claim(target, limit, now, lease)

    async def ack(self, target: str, ids: Sequence[str]) -> None:
        if self.fail_acks > 0:
            self.fail_acks -= 1
            raise RuntimeError("the store went away")
        await super().ack(target, ids)


async def test_a_failure_removing_expired_events_does_not_stop_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The outbox raises once when the expired events are removed: logged; the batch's other
    events are sent, and later ones too (the loop lives on)."""
    from tests.support.webhook_receiver import Receiver

    receiver = Receiver(SECRET)
    await receiver.up()
    outbox = FlakyOutbox(fail_acks=1)
    now = time.time()
    await outbox.add([connect_event("old", now - 61), connect_event("fresh", now)], now)
    deliverer = deliverer_of(outbox, receiver.url)
    deliverer.start()
    try:
        await eventually(lambda: "fresh" in receiver.events, what="the fresh event sent")
        await outbox.add([connect_event("later", time.time())], time.time())
        deliverer.wake()
        await eventually(lambda: "later" in receiver.events, what="a later event sent")
    finally:
        await deliverer.stop()
        await receiver.down()
    assert "old" not in receiver.events
    assert any("removing expired events failed" in r.getMessage() for r in caplog.records)


async def test_a_failure_settling_a_delivered_batch_is_no_failed_post(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The outbox raises once when a delivered batch is acknowledged: logged; it counts as
    delivered, not as a failed POST to retry, and the next events are settled."""
    from tests.support.webhook_receiver import Receiver

    receiver = Receiver(SECRET)
    await receiver.up()
    outbox = FlakyOutbox(fail_acks=1)
    now = time.time()
    await outbox.add([connect_event("first", now)], now)
    deliverer = deliverer_of(outbox, receiver.url)
    deliverer.start()
    try:
        await eventually(lambda: deliverer.delivered == 1, what="the first batch delivered")
        await outbox.add([connect_event("second", time.time())], time.time())
        deliverer.wake()
        await eventually(lambda: deliverer.delivered == 2, what="the second batch delivered")
        assert await outbox.depth("webhook") == 1  # (the first waits for its lease)
    finally:
        await deliverer.stop()
        await receiver.down()
    assert deliverer.retried == 0 and deliverer.failures == 0
    assert any("settling 1 events failed" in r.getMessage() for r in caplog.records)


async def test_an_outbox_that_keeps_failing_is_paced_and_stop_ends_the_loop() -> None:
    """Every removal of expired events raises: the loop backs off between claims (no busy
    loop) and stop() ends it during its pause."""
    outbox = FlakyOutbox(fail_acks=10**9)
    now = time.time()
    await outbox.add([connect_event(f"old{n}", now - 61) for n in range(1000)], now)
    deliverer = deliverer_of(outbox, URL, max_backoff=0.2)
    deliverer.start()
    task = deliverer._task
    assert task is not None
    await eventually(lambda: outbox.claims >= 2, what="a second claim")
    await asyncio.sleep(0.5)
    await deliverer.stop()
    assert task.cancelled()
    assert 2 <= outbox.claims < 50, outbox.claims
    assert deliverer.store_failing >= 1


async def test_a_target_whose_body_raises_is_retried_not_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A target's body builder that raises (a bug in a reshaping target) is a failed POST,
    logged and retried with back-off; once it works the event is delivered and settled."""
    from tests.support.webhook_receiver import Receiver

    receiver = Receiver(SECRET)
    await receiver.up()
    outbox = MemoryEventOutbox()
    await outbox.add([connect_event("e1", time.time())], time.time())
    good = webhook_target(receiver.url, SECRET)
    calls = [0]

    def body(payloads: list[str]) -> bytes:
        calls[0] += 1
        if calls[0] == 1:
            raise ValueError("the target's body builder broke")
        return good.body(payloads)

    deliverer = Deliverer(
        outbox,
        replace(good, body=body),
        batch_size=10,
        concurrency=1,
        timeout=3,
        max_backoff=0.05,
        max_age=60,
    )
    deliverer.start()
    try:
        for _ in range(200):
            if deliverer.delivered:
                break
            await asyncio.sleep(0.02)
    finally:
        await deliverer.stop()
        await receiver.down()
    assert calls[0] >= 2
    assert deliverer.retried == 1 and deliverer.delivered == 1
    assert await outbox.depth("webhook") == 0
    assert "the target's body builder broke" in caplog.text
