"""Pusher webhooks (hubbub.webhooks.pusher and the emitter's Pusher side): Pusher's events
and body, signed so that the ``pusher`` PyPI library's ``validate_webhook`` takes them, the
body stamped and signed anew on every attempt, and each app getting only its types of its
own channels, apart from hubbub's own webhooks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

import pusher
import pytest

from hubbub.config import Settings
from hubbub.core.types import ClientInfo
from hubbub.engines.eventoutbox import MemoryEventOutbox, OutboxEvent, TransitionEvents
from hubbub.engines.factory import outbox_store
from hubbub.engines.local import LocalBroker
from hubbub.engines.memory import MemoryHistory
from hubbub.pushersettings import PusherApp
from hubbub.webhooks.delivery import Deliverer, event_type
from hubbub.webhooks.emitter import Events
from hubbub.webhooks.pusher import app_hooks, body, event_json, pusher_target
from tests.support.timing import eventually
from tests.support.webhook_receiver import PusherReceiver

APP_ID, KEY, SECRET = "42", "app-key", "app-secret-0123456789"
URL = "http://127.0.0.1:9/pusher"
HOOK_SECRET = "s" * 32


def app(**extra: object) -> PusherApp:
    fields: dict[str, object] = {"id": APP_ID, "key": KEY, "secret": SECRET, "webhook_url": URL}
    return PusherApp.model_validate(fields | extra)


def library() -> pusher.Pusher:
    return pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET)


def test_event_json_and_body_are_pushers() -> None:
    occupied = event_json("channel_occupied", "news")
    member = event_json("member_added", "presence-room", user_id="ann")
    assert occupied == '{"name":"channel_occupied","channel":"news"}'
    assert json.loads(member) == {
        "name": "member_added",
        "channel": "presence-room",
        "user_id": "ann",
    }
    raw = body([occupied, member], 1_700_000_000_123)
    assert raw == (
        b'{"time_ms":1700000000123,"events":[{"name":"channel_occupied","channel":"news"},'
        b'{"name":"member_added","channel":"presence-room","user_id":"ann"}]}'
    )
    assert event_type(occupied) == "channel_occupied"
    assert event_type(member) == "member_added"


def test_the_library_validates_our_body_and_headers() -> None:
    target = pusher_target(app())
    raw = target.body([event_json("channel_vacated", "news")])
    headers = target.headers(raw)
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Pusher-Key"] == KEY
    got = library().validate_webhook(headers["X-Pusher-Key"], headers["X-Pusher-Signature"], raw)
    assert got is not None
    assert got["events"] == [{"name": "channel_vacated", "channel": "news"}]
    assert abs(got["time_ms"] - time.time() * 1000) < 5000
    tampered = raw.replace(b"news", b"nevs")
    assert library().validate_webhook(KEY, headers["X-Pusher-Signature"], tampered) is None


def test_each_body_is_stamped_when_made_and_an_old_one_is_refused() -> None:
    """The library refuses a webhook whose time_ms is over 300 s off: a body made once and
    sent again minutes later would be refused forever; made per attempt, it is current."""
    now = time.time()
    clock = iter([now - 400, now])
    target = pusher_target(app(), lambda: next(clock))
    payloads = [event_json("channel_occupied", "news")]
    first, second = target.body(payloads), target.body(payloads)
    assert json.loads(first)["time_ms"] == int((now - 400) * 1000)
    assert json.loads(second)["time_ms"] == int(now * 1000)
    for raw, ok in ((first, False), (second, True)):
        signature = target.headers(raw)["X-Pusher-Signature"]
        assert (library().validate_webhook(KEY, signature, raw) is not None) is ok


async def test_a_retried_batch_goes_with_a_fresh_time_and_signature() -> None:
    """Through the deliverer: the first attempt is stamped 400 s ago (refused by the
    library, 401), the retry is stamped anew, signed anew and accepted."""
    receiver = PusherReceiver((APP_ID, KEY, SECRET))
    await receiver.up()
    now = time.time()
    stamps = iter([now - 400])
    target = pusher_target(app(webhook_url=receiver.url), lambda: next(stamps, time.time()))
    outbox = MemoryEventOutbox()
    event = OutboxEvent(target.name, "e1", event_json("channel_occupied", "news"), now)
    await outbox.add([event], now)
    deliverer = Deliverer(
        outbox, target, timeout=2, batch_size=10, max_backoff=0.1, max_age=60, concurrency=1
    )
    deliverer.start()
    try:
        await eventually(lambda: receiver.events, what="the retried batch accepted")
    finally:
        await deliverer.stop()
        await receiver.down()
    first, second = receiver.requests[:2]
    assert not first["valid"] and second["valid"]
    assert first["body"]["events"] == second["body"]["events"]
    assert second["body"]["time_ms"] - first["body"]["time_ms"] >= 400_000
    assert first["headers"]["X-Pusher-Signature"] != second["headers"]["X-Pusher-Signature"]
    assert receiver.of_type("channel_occupied", channel="news")
    assert deliverer.retried == 1 and deliverer.delivered == 1
    assert await outbox.depth(target.name) == 0


def test_only_apps_with_a_url_and_events_are_targets() -> None:
    apps = [
        app(),
        app(id="43", key="k43", webhook_url=None),
        app(id="44", key="k44", webhook_events=[]),
    ]
    hooks = app_hooks(apps)
    assert [h.target.name for h in hooks] == ["pusher-42"]
    with pytest.raises(ValueError, match="no webhook_url"):
        pusher_target(app(webhook_url=None))


class NoIO(MemoryEventOutbox):
    """An outbox that fails the test when it is touched."""

    def _touched(self) -> None:
        raise AssertionError("the outbox was used")

    async def add(self, events: Sequence[OutboxEvent], due: float) -> None:
        self._touched()

    async def occupy(self, channel: str, node: str, events: TransitionEvents, due: float) -> bool:
        self._touched()
        return False


def events_of(*apps: PusherApp, own: bool = False) -> tuple[Events, MemoryEventOutbox]:
    outbox = MemoryEventOutbox()
    extra = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_secret": HOOK_SECRET} if own else {}
    settings = Settings(pusher_apps=apps, **extra)  # type: ignore[arg-type]
    return Events.of(settings, outbox, "node-1"), outbox


async def claimed(outbox: MemoryEventOutbox, target: str) -> list[dict[str, object]]:
    got = await outbox.claim(target, 100, time.time() + 1, 30)
    return [json.loads(e.payload) for e in got]


async def test_pusher_events_with_their_fields_and_pusher_names() -> None:
    ev, outbox = events_of(app())
    assert not ev.enabled  # hubbub's own webhooks are off
    await ev.connected(ClientInfo("c", "u"))  # (none of a Pusher app's types)
    await ev.pusher_member_added("$pusher-42:presence-room", "ann")
    await ev.pusher_member_removed("$pusher-42:presence-room", "ann")
    await ev.pusher_client_event("$pusher-42:private-a", "client-x", '{"n":1}', "1.2", None)
    await ev.pusher_client_event("$pusher-42:presence-room", "client-y", '"hi"', "1.3", "ann")
    await ev.pusher_client_event("$pusher-42:private-a", "client-z", "[1]", "1.4", "bob")
    await ev.pusher_cache_miss("pusher-42:cache-quotes")
    await ev.pusher_cache_miss("pusher-9:cache-quotes")  # another app's channel: nothing
    assert await claimed(outbox, "pusher-42") == [
        {"name": "member_added", "channel": "presence-room", "user_id": "ann"},
        {"name": "member_removed", "channel": "presence-room", "user_id": "ann"},
        {
            "name": "client_event",
            "channel": "private-a",
            "event": "client-x",
            "data": '{"n":1}',
            "socket_id": "1.2",
        },
        {
            "name": "client_event",
            "channel": "presence-room",
            "event": "client-y",
            "data": "hi",  # the string a Pusher client gets
            "socket_id": "1.3",
            "user_id": "ann",
        },
        {  # user_id only on presence channels
            "name": "client_event",
            "channel": "private-a",
            "event": "client-z",
            "data": "[1]",
            "socket_id": "1.4",
        },
        {"name": "cache_miss", "channel": "cache-quotes"},
    ]
    assert await outbox.depth("webhook") == 0
    assert ev.emitted == {
        "member_added": 1,
        "member_removed": 1,
        "client_event": 3,
        "cache_miss": 1,
    }


async def test_unwanted_events_return_at_once_without_io() -> None:
    settings = Settings(pusher_apps=(app(webhook_events=["member_added"]),))
    ev = Events.of(settings, NoIO(), "node-1")
    await ev.pusher_client_event("$pusher-42:private-a", "client-x", "{}", "1.2", None)
    await ev.pusher_cache_miss("pusher-42:cache-a")
    await ev.pusher_member_removed("$pusher-42:presence-room", "ann")
    await ev.pusher_member_added("$pusher-9:presence-room", "ann")  # not the app's channel
    ev.channel_used("pusher-42:news")  # no occupancy wanted: nothing to apply
    assert not ev._want
    off = Events.of(Settings(), NoIO(), "node-1")
    await off.pusher_member_added("$pusher-42:presence-room", "ann")
    assert off.targets == [] and off.deliverers == []


async def test_occupancy_of_the_apps_channels_only_with_their_names() -> None:
    ev, outbox = events_of(app())
    await ev.start()
    try:
        ev.channel_used("pusher-42:news")
        ev.channel_used("$pusher-42:presence-room")
        ev.channel_used("other")  # no target wants it: not even tracked
        await eventually(lambda: ev._settled.is_set(), what="occupancy applied")
        ev.channel_unused("pusher-42:news")
        await eventually(lambda: ev._settled.is_set(), what="occupancy applied")
        assert await outbox.channels_of("node-1") == ["$pusher-42:presence-room"]
    finally:
        await ev.stop()
    got = sorted((e["name"], e["channel"]) for e in await claimed(outbox, "pusher-42"))
    assert got == [
        ("channel_occupied", "news"),
        ("channel_occupied", "presence-room"),
        ("channel_vacated", "news"),
    ]


async def test_both_kinds_together_each_with_its_own_events() -> None:
    """hubbub's target gets its events of every channel as before (node names, its format,
    no Pusher-only types); the app gets its own channels' occupancy and Pusher types."""
    ev, outbox = events_of(app(webhook_events=["channel_vacated", "member_added"]), own=True)
    await ev.start()
    try:
        ev.channel_used("pusher-42:news")
        ev.channel_used("other")
        await eventually(lambda: ev._settled.is_set(), what="occupancy applied")
        ev.channel_unused("pusher-42:news")
        await eventually(lambda: ev._settled.is_set(), what="occupancy applied")
        await ev.pusher_member_added("$pusher-42:presence-room", "ann")
        await ev.subscribed("pusher-42:news", ClientInfo("c", "u"))
    finally:
        await ev.stop()
    own = sorted((e["type"], e.get("channel")) for e in await claimed(outbox, "webhook"))
    assert own == [
        ("channel_occupied", "other"),
        ("channel_occupied", "pusher-42:news"),
        ("channel_vacated", "pusher-42:news"),
        ("subscribe", "pusher-42:news"),
    ]
    theirs = sorted(await claimed(outbox, "pusher-42"), key=lambda e: str(e["name"]))
    assert theirs == [
        {"name": "channel_vacated", "channel": "news"},  # (occupied: not in its webhook_events)
        {"name": "member_added", "channel": "presence-room", "user_id": "ann"},
    ]


async def test_a_full_outbox_drops_an_apps_event_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = MemoryEventOutbox()
    settings = Settings(pusher_apps=(app(),), webhook_outbox_size=1)
    ev = Events.of(settings, outbox, "node-1")
    await ev.pusher_cache_miss("pusher-42:cache-a")
    await ev.pusher_cache_miss("pusher-42:cache-b")
    assert await outbox.depth("pusher-42") == 1
    assert ev.dropped["full"] == 1
    assert any("(cache_miss) dropped" in r.getMessage() for r in caplog.records)


def test_the_outbox_exists_with_only_an_apps_webhook_url() -> None:
    broker = LocalBroker(MemoryHistory())
    assert outbox_store(Settings(), broker) is None
    assert outbox_store(Settings(pusher_apps=(app(webhook_url=None),)), broker) is None
    assert isinstance(outbox_store(Settings(pusher_apps=(app(),)), broker), MemoryEventOutbox)


async def test_start_delivers_an_apps_events_without_hubbubs_webhooks() -> None:
    receiver = PusherReceiver((APP_ID, KEY, SECRET))
    await receiver.up()
    settings = Settings(pusher_apps=(app(webhook_url=receiver.url),), webhook_max_backoff=0.1)
    ev = Events.of(settings, MemoryEventOutbox(), "node-1")
    await ev.start()
    try:
        await ev.pusher_member_added("$pusher-42:presence-room", "ann")
        await eventually(lambda: receiver.events, what="the member_added webhook")
    finally:
        await ev.stop()
        await receiver.down()
    assert receiver.events == [
        {"name": "member_added", "channel": "presence-room", "user_id": "ann"}
    ]
    assert receiver.requests[0]["headers"]["X-Pusher-Key"] == KEY
    await asyncio.sleep(0)
