"""The server API's ``refresh`` and ``connections`` seen by centrifuge-python (the PyPI SDK,
unchanged), in both wire formats; the API called with `cent`.

centrifuge-python 0.7 (like centrifuge-js 5.8) reads the Refresh push and does nothing with
it: its own refresh timer (from the connect reply's ttl) is what makes it fetch a new token.
So the checks are: the push does not disturb it, a refresh of its token (get_token) moves the
deadline the API set, and ``expired`` (3005) is a disconnect it reconnects after.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from cent import AsyncClient, ConnectionsRequest, RefreshRequest
from centrifuge import Client, ClientEventHandler, ClientState, ConnectingContext

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.sdk import SDK_GARBAGE
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = [
    pytest.mark.interop,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]

KEY = "f" * 32
SECRET = "g" * 40


@pytest.fixture
def api_server(start_server: StartServer) -> ServerProcess:
    # (no grace past a deadline: the tests see the close at the time the API set)
    return start_server(
        "--api-key", KEY, "--token-hmac-secret", SECRET, config="client_expired_close_delay = 0\n"
    )


@pytest.fixture(params=[False, True], ids=["json", "protobuf"])
def protobuf(request: pytest.FixtureRequest) -> bool:
    return request.param  # type: ignore[no-any-return]


class Events(ClientEventHandler):
    def __init__(self) -> None:
        self.connecting: list[int] = []

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.connecting.append(ctx.code)


async def test_the_sdk_refreshes_its_token_and_stays(
    api_server: ServerProcess, protobuf: bool
) -> None:
    """Token valid 2 s; the API moves the expiry to 5 s from now (a Refresh push the SDK
    ignores); at 2 s the SDK asks get_token for a token valid 10 minutes and refreshes; past
    the API's deadline it is still connected, on the same connection."""
    tokens: list[str] = []

    async def get_token() -> str:
        tokens.append(mint(SECRET, "ada", ttl=600))
        return tokens[-1]

    events = Events()
    sdk = Client(
        api_server.ws + "/connection/websocket",
        events=events,
        token=mint(SECRET, "ada", ttl=3),
        get_token=get_token,
        use_protobuf=protobuf,
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.3,
    )
    await sdk.connect()
    await sdk.ready(scaled(10))
    try:
        first = sdk.client_id
        async with AsyncClient(api_server.url + "/api", KEY) as api:
            deadline = int(time.time()) + 5
            await api.refresh(RefreshRequest(user="ada", expire_at=deadline))
            await asyncio.sleep(deadline + 1.5 - time.time())  # past the API's deadline
            assert tokens, "the SDK never asked for a new token"
            assert sdk.state == ClientState.CONNECTED
            assert sdk.client_id == first, "it reconnected"
            assert events.connecting == [0]  # only the first connect
            listed = await api.connections(ConnectionsRequest(user="ada", expression=""))
            (info,) = listed.connections.values()
            assert (info.app_name, info.protocol) == ("python", "protobuf" if protobuf else "json")
    finally:
        await sdk.disconnect()


async def test_expired_disconnects_and_the_sdk_comes_back(
    api_server: ServerProcess, protobuf: bool
) -> None:
    events = Events()
    sdk = Client(
        api_server.ws + "/connection/websocket",
        events=events,
        token=mint(SECRET, "bob"),
        use_protobuf=protobuf,
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.3,
    )
    await sdk.connect()
    await sdk.ready(scaled(10))
    try:
        first = sdk.client_id
        async with AsyncClient(api_server.url + "/api", KEY) as api:
            await api.refresh(RefreshRequest(user="bob", expired=True))
        for _ in range(int(scaled(100))):
            if sdk.client_id != first and sdk.state == ClientState.CONNECTED:
                break
            await asyncio.sleep(0.05)
        assert 3005 in events.connecting  # closed as expired, then reconnected
        assert sdk.state == ClientState.CONNECTED and sdk.client_id != first
    finally:
        await sdk.disconnect()
