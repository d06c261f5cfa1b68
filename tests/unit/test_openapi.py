"""The OpenAPI document describes exactly the server API's routes."""

from __future__ import annotations

from aiohttp import web

from hubbub.config import Settings
from hubbub.node import Node
from hubbub.server import api
from hubbub.server.app import make_app
from hubbub.server.openapi import REQUESTS, RESULTS, document


def test_document_matches_the_methods() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {f"/api/{name}" for name in api.METHODS} | {"/api"}
    assert set(RESULTS) | {"batch"} == set(REQUESTS)
    for path, item in doc["paths"].items():
        post = item["post"]
        assert post["operationId"] == ("legacy" if path == "/api" else path.removeprefix("/api/"))
        assert post["requestBody"]["content"]["application/json"]["schema"]["type"] == "object"
        assert {"200", "400", "401", "413"} <= set(post["responses"])
    assert set(doc["components"]["securitySchemes"]) == {"apiKey", "authorizationApiKey"}


def test_routes_serve_the_documented_paths() -> None:
    settings = Settings()
    app: web.Application = make_app(settings, Node(settings))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    assert ("POST", "/api/{method}") in routes
    assert ("POST", "/api") in routes
    assert ("GET", "/api/openapi.json") in routes
    # every documented method is one the route dispatches to
    documented = {p.removeprefix("/api/") for p in document()["paths"] if p != "/api"}
    assert documented <= set(api.METHODS)
    legacy = document()["paths"]["/api"]["post"]
    assert legacy["deprecated"] is True
    assert f"at most {api.LEGACY_MAX_COMMANDS} commands" in legacy["description"]
