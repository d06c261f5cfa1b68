"""The OpenAPI 3 document of the server API, served at ``/api/openapi.json``.

Built from :data:`REQUESTS` and :data:`RESULTS`, one entry per method of
:data:`hubbub.api.METHODS` (plus ``batch``), and the legacy ``POST /api`` (:data:`LEGACY`);
``tests/unit/test_openapi.py`` checks that the document and the real routes agree.
"""

from __future__ import annotations

from typing import Any, Final

from hubbub import __version__

S = dict[str, Any]


def obj(required: list[str] | None = None, **props: S) -> S:
    schema: S = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


STR: Final[S] = {"type": "string"}
INT: Final[S] = {"type": "integer"}
BOOL: Final[S] = {"type": "boolean"}
ANY: Final[S] = {"description": "any JSON value"}
TAGS: Final[S] = {"type": "object", "additionalProperties": STR}
POSITION: Final[S] = obj(offset=INT, epoch=STR)
CLIENT_INFO: Final[S] = obj(client=STR, user=STR, conn_info=ANY, chan_info=ANY)
PUBLICATION: Final[S] = obj(data=ANY, offset=INT, info=CLIENT_INFO, tags=TAGS, time=INT)
PUBLISH_RESULT: Final[S] = obj(offset=INT, epoch=STR)
CONNECTION_INFO: Final[S] = obj(
    app_name=STR,
    app_version=STR,
    transport=STR,
    protocol=STR,
    user=STR,
    state=obj(channels={"type": "object", "additionalProperties": obj()}),
    connected_at_ms=INT,
)
ERROR: Final[S] = obj(["code", "message"], code=INT, message=STR)
EMPTY: Final[S] = obj()
#: Base64 of JSON text (UTF-8): the JSON value for JSON clients, these bytes for Protobuf ones.
B64: Final[S] = {"type": "string", "format": "byte"}

REQUESTS: Final[dict[str, S]] = {
    "publish": obj(
        ["channel"],
        channel=STR,
        data=ANY,
        b64data=B64,
        skip_history=BOOL,
        tags=TAGS,
        idempotency_key=STR,
        delta=BOOL,
    ),
    "broadcast": obj(
        ["channels"],
        channels={"type": "array", "items": STR},
        data=ANY,
        b64data=B64,
        skip_history=BOOL,
        tags=TAGS,
        idempotency_key=STR,
        delta=BOOL,
    ),
    "subscribe": obj(
        ["user", "channel"],
        user=STR,
        channel=STR,
        client=STR,
        info=ANY,
        b64info=B64,
        data=ANY,
        b64data=B64,
    ),
    "unsubscribe": obj(["user", "channel"], user=STR, channel=STR, client=STR),
    "disconnect": obj(
        ["user"],
        user=STR,
        client=STR,
        whitelist={"type": "array", "items": STR},
        disconnect=obj(code=INT, reason=STR),
    ),
    "refresh": obj(
        ["user"],
        user=STR,
        client=STR,
        session=STR,
        expired=BOOL,
        expire_at=INT,
        info=ANY,
        b64info=B64,
    ),
    "connections": obj(["user"], user=STR, expression=STR),
    "presence": obj(["channel"], channel=STR),
    "presence_stats": obj(["channel"], channel=STR),
    "history": obj(["channel"], channel=STR, limit=INT, since=POSITION, reverse=BOOL),
    "history_remove": obj(["channel"], channel=STR),
    "channels": obj(pattern=STR),
    "info": obj(),
    "batch": obj(["commands"], commands={"type": "array", "items": {"type": "object"}}),
}

RESULTS: Final[dict[str, S]] = {
    "publish": PUBLISH_RESULT,
    "broadcast": obj(responses={"type": "array", "items": obj(result=PUBLISH_RESULT, error=ERROR)}),
    "subscribe": EMPTY,
    "unsubscribe": EMPTY,
    "disconnect": EMPTY,
    "refresh": EMPTY,
    "connections": obj(
        connections={"type": "object", "additionalProperties": CONNECTION_INFO},
        truncated=BOOL,
    ),
    "presence": obj(presence={"type": "object", "additionalProperties": CLIENT_INFO}),
    "presence_stats": obj(num_clients=INT, num_users=INT),
    "history": obj(publications={"type": "array", "items": PUBLICATION}, offset=INT, epoch=STR),
    "history_remove": EMPTY,
    "channels": obj(channels={"type": "object", "additionalProperties": obj(num_clients=INT)}),
    "info": obj(
        nodes={
            "type": "array",
            "items": obj(
                uid=STR,
                name=STR,
                version=STR,
                num_clients=INT,
                num_users=INT,
                num_channels=INT,
                num_subs=INT,
                uptime=INT,
            ),
        }
    ),
}


#: ``POST /api``: Centrifugo v3/v4's format (gocent v3 and older clients), kept for them.
LEGACY: Final[S] = {
    "post": {
        "operationId": "legacy",
        "deprecated": True,
        "summary": "several commands, one per line (Centrifugo v3/v4 format)",
        "description": (
            "The body is newline-delimited JSON: one command object per line (blank lines "
            "skipped), at most 1000 commands. The reply has one line per command, in order: "
            '{"result": ...} or {"error": {"code", "message"}} (107: a line that is not a '
            "JSON object or a bad method or params; 104: unknown method, batch included), "
            "with the command's id when it has one."
        ),
        "security": [{"apiKey": []}, {"authorizationApiKey": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": obj(
                        ["method"],
                        method=STR,
                        params={"type": "object", "description": "the method's request"},
                        id=INT,
                    )
                }
            },
        },
        "responses": {
            "200": {
                "description": "one reply per line, in the order of the commands",
                "content": {
                    "application/json": {
                        "schema": obj(
                            id=INT,
                            result={"type": "object", "description": "the method's result"},
                            error=ERROR,
                        )
                    }
                },
            },
            "400": {"description": "no command in the body"},
            "401": {"description": "missing or wrong API key (or none configured)"},
            "413": {
                "description": "the body is larger than api_max_body_size, or holds more "
                "than 1000 commands"
            },
        },
    }
}


def document() -> S:
    paths: S = {"/api": LEGACY}
    for method, request in REQUESTS.items():
        result = RESULTS.get(method, obj(replies={"type": "array", "items": {"type": "object"}}))
        ok = obj(result=result, error=ERROR) if method != "batch" else result
        paths[f"/api/{method}"] = {
            "post": {
                "operationId": method,
                "summary": f"{method} (Centrifugo-compatible server API)",
                "security": [{"apiKey": []}, {"authorizationApiKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": request}},
                },
                "responses": {
                    "200": {
                        "description": "result, or an error object with a protocol code",
                        "content": {"application/json": {"schema": ok}},
                    },
                    "400": {"description": "the body is not a JSON object"},
                    "401": {"description": "missing or wrong API key (or none configured)"},
                    "413": {"description": "the body is larger than api_max_body_size"},
                },
            }
        }
    return {
        "openapi": "3.0.3",
        "info": {"title": "hubbub server API", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "authorizationApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "apikey <key>",
                },
            }
        },
    }
