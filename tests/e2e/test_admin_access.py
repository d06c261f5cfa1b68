"""Who may use /admin and its API."""

from __future__ import annotations

import base64

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from hubbub.config import Settings
from hubbub.node import Node
from hubbub.server import pages
from tests.conftest import StartServer

pytestmark = pytest.mark.e2e


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_admin_password_and_csrf_header(start_server: StartServer) -> None:
    server = start_server(config='admin_password = "correct horse"\n')
    good = basic("admin", "correct horse")
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/admin") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
        async with http.get(server.url + "/admin", headers=basic("a", "wrong")) as resp:
            assert resp.status == 401
        async with http.get(server.url + "/admin", headers=good) as resp:
            assert resp.status == 200
        async with http.get(server.url + "/admin/api/stats", headers=good) as resp:
            stats = await resp.json()
            assert stats["connections"] == 0 and "namespaces" in stats
        body = {"channel": "news", "data": 1}
        async with http.post(server.url + "/admin/api/publish", json=body, headers=good) as resp:
            assert resp.status == 403  # no X-Hubbub-Admin header: a cross-site form cannot
        headers = {**good, "X-Hubbub-Admin": "1"}
        async with http.post(server.url + "/admin/api/publish", json=body, headers=headers) as resp:
            assert (await resp.json())["result"]["offset"] == 1
        async with http.post(
            server.url + "/admin/api/history_remove", json=body, headers=headers
        ) as resp:
            assert resp.status == 404  # only what the dashboard needs


@pytest.mark.parametrize(
    ("host", "password", "allowed"),
    [("127.0.0.1", None, True), ("::1", None, True), ("localhost", None, True),
     ("0.0.0.0", None, False), ("192.0.2.7", None, False)],
)  # fmt: skip
def test_without_password_only_loopback_is_open(
    host: str, password: str | None, allowed: bool
) -> None:
    """Checked without binding anything: the decision depends on the configured host only."""
    settings = Settings(host=host, admin_password=password)
    app = web.Application()
    pages.add_routes(app, settings, Node(settings))
    request = make_mocked_request("GET", "/admin", app=app)
    if allowed:
        pages._check_admin(request)
    else:
        with pytest.raises(web.HTTPForbidden) as refused:
            pages._check_admin(request)
        assert "admin_password" in (refused.value.text or "")
