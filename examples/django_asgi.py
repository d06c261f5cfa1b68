"""hubbub inside a Django project: an ``asgi.py`` that sends ``/rt/...`` (and the ASGI
lifespan, which Django does not handle) to ``hub.asgi()`` and the rest to Django.

A whole project in one file so that it runs as it is: ``uvicorn examples.django_asgi:application``;
clients connect to ``ws://127.0.0.1:8000/rt/connection/websocket``, ``GET /hello`` is Django's
and publishes to ``news:updates`` with ``hub.publish``. In a real project keep the
``application`` function in ``asgi.py`` and the settings and views where they are.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

from hubbub import Hub

hub = Hub(namespaces=[{"name": "news"}])


async def hello(request: HttpRequest) -> JsonResponse:
    offset = await hub.publish("news:updates", {"text": request.GET.get("text", "hello")})
    return JsonResponse({"offset": offset})


urlpatterns = [path("hello", hello)]
if not settings.configured:
    settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], DEBUG=False)

from django.core.asgi import get_asgi_application  # noqa: E402 (needs the settings)

django_app = get_asgi_application()
realtime = hub.asgi()  # it gets the lifespan: starts and stops the hub's node


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await realtime(scope, receive, send)
    if scope["path"] == "/rt" or scope["path"].startswith("/rt/"):
        scope = {**scope, "root_path": scope.get("root_path", "") + "/rt"}
        return await realtime(scope, receive, send)
    return await django_app(scope, receive, send)
