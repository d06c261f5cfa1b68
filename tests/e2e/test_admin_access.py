"""Who may use /admin and its API."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from hubbub.config import Settings
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


TRUSTING = 'admin_insecure = true\ntrusted_proxies = ["127.0.0.1/32"]\n'
#: (server settings, request headers, expected status of GET /admin and of an admin POST)
ACCESS = [
    ("", {}, 403),  # no password and not insecure: refused, even from this machine
    ("admin_insecure = true\n", {}, 200),
    ("admin_insecure = true\n", {"Host": "evil.example"}, 403),  # DNS rebinding
    ("admin_insecure = true\n", {"Host": "evil.example:8765"}, 403),
    ("admin_insecure = true\n", {"Host": "localhost"}, 200),
    ("admin_insecure = true\n", {"Host": "[::1]:8765"}, 200),
    ("admin_insecure = true\n", {"X-Forwarded-For": "203.0.113.9"}, 403),  # via a proxy
    ("admin_insecure = true\n", {"Forwarded": "for=203.0.113.9"}, 403),
    ("admin_insecure = true\n", {"X-Real-IP": "203.0.113.9"}, 403),
    # Through a trusted proxy the forwarded address decides: a remote user behind a local
    # nginx is not local; a local one is; a proxy naming the client only in Forwarded is not
    # believed (hubbub does not read it).
    (TRUSTING, {"X-Forwarded-For": "203.0.113.9"}, 403),
    (TRUSTING, {"X-Real-IP": "203.0.113.9"}, 403),
    (TRUSTING, {"X-Forwarded-For": "127.0.0.1"}, 200),
    (TRUSTING, {"Forwarded": "for=203.0.113.9"}, 403),
    ('admin_password = "correct horse"\n', {}, 401),
    ('admin_password = "correct horse"\n', {"Host": "evil.example"}, 401),
    ('admin_password = "correct horse"\n', basic("x", "correct horse"), 200),
]


@pytest.mark.parametrize(("config", "headers", "status"), ACCESS)
async def test_who_gets_into_the_admin(
    start_server: StartServer, config: str, headers: dict[str, str], status: int
) -> None:
    """The security table of /admin: a password, or admin_insecure for direct requests
    from this machine only; never open because of where hubbub listens."""
    server = start_server(config=config)
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/admin", headers=headers) as resp:
            assert resp.status == status, await resp.text()
        post = {**headers, "X-Hubbub-Admin": "1"}
        body = {"channel": "news", "data": 1}
        async with http.post(server.url + "/admin/api/publish", json=body, headers=post) as resp:
            assert resp.status == status, await resp.text()
        async with http.get(server.url + "/admin/api/stats", headers=headers) as resp:
            assert resp.status == status


def test_genconfig_sets_an_admin_password() -> None:
    """What genconfig writes is safe behind a reverse proxy: /admin has a password."""
    import tomllib

    from hubbub.operator import genconfig

    settings = Settings(**tomllib.loads(genconfig()))
    assert settings.admin_password and not settings.admin_insecure


def test_genconfig_trusts_no_proxy_and_documents_the_edge() -> None:
    """genconfig trusts no proxy unless told (a commented trusted_proxies line, which parses
    when uncommented), and shows the TLS and access-log keys."""
    import tomllib

    from hubbub.operator import genconfig

    text = genconfig()
    assert Settings(**tomllib.loads(text)).trusted_proxies == ()
    line = '# trusted_proxies = ["127.0.0.1/32"]'
    assert line in text and "# tls_cert = " in text and "# access_log = true" in text
    opened = text.replace(line, line.removeprefix("# "))
    assert Settings(**tomllib.loads(opened)).trusted_proxies == ("127.0.0.1/32",)
