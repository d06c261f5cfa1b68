"""The demos behind /demo/*: chat, live monitoring and a small multiplayer game.

They run inside ``hubbub serve`` when ``demos`` is true (the embedded default) and use only
what any application could: namespaces, ``node.publish`` and RPC handlers. Their namespaces
(below) are added unless the configuration defines namespaces of the same names.
"""

from __future__ import annotations

from typing import Any, Final

from hubbub.config import Namespace

DEMO_NAMESPACES: Final[list[dict[str, Any]]] = [
    # chat:<room>: history for late joiners and recovery, presence with join/leave.
    {
        "name": "chat",
        "history_size": 1000,
        "history_ttl": 24 * 3600,
        "force_recovery": True,
        "presence": True,
        "join_leave": True,
        "force_push_join_leave": True,
        "max_message_size": 4096,
    },
    # typing:<room>: short-lived "is typing" signals, never stored.
    {"name": "typing", "max_message_size": 256},
    # monitor:<name>: one sample a second, the last minutes kept for a page that opens.
    {
        "name": "monitor",
        "history_size": 600,
        "history_ttl": 600,
        "force_recovery": True,
        "allow_publish_for_client": False,
        "allow_publish_for_anonymous": False,
    },
    # game:<arena>: state deltas from the server's tick loop; inputs arrive by RPC.
    {
        "name": "game",
        "allow_publish_for_client": False,
        "allow_publish_for_anonymous": False,
        "presence": True,
    },
]


def demo_namespaces(configured: tuple[Namespace, ...]) -> list[Namespace]:
    taken = {ns.name for ns in configured}
    return [Namespace(**ns) for ns in DEMO_NAMESPACES if ns["name"] not in taken]
