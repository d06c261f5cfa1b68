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
    paths = {path.removeprefix("/api/") for path in doc["paths"]}
    assert paths == set(api.METHODS)
    assert set(RESULTS) | {"batch"} == set(REQUESTS)
    for path, item in doc["paths"].items():
        post = item["post"]
        assert post["operationId"] == path.removeprefix("/api/")
        assert post["requestBody"]["content"]["application/json"]["schema"]["type"] == "object"
        assert {"200", "400", "401", "413"} <= set(post["responses"])
    assert set(doc["components"]["securitySchemes"]) == {"apiKey", "authorizationApiKey"}


def test_routes_serve_the_documented_paths() -> None:
    settings = Settings()
    app: web.Application = make_app(settings, Node(settings))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    assert ("POST", "/api/{method}") in routes
    assert ("GET", "/api/openapi.json") in routes
    # every documented method is one the route dispatches to
    assert {p.removeprefix("/api/") for p in document()["paths"]} <= set(api.METHODS)
