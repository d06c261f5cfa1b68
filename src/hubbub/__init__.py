"""hubbub: a real-time messaging server for Python.

The public Python API is what this package exports (``__all__``)::

    from hubbub import ClientError, ConnectContext, ConnectResult, DisconnectError, Hub

- :class:`Hub` and its hooks' contexts and results (:mod:`hubbub.hooks` documents every
  field), the hooks' type aliases (``ConnectHook``, ... ``StartupHook``);
- the exceptions (:mod:`hubbub.errors`): :class:`HubbubError` and its subclasses, which hooks
  raise (:class:`ClientError`, :class:`DisconnectError`) and the hub's methods raise
  (:class:`ConfigError`, :class:`ListenError`, :class:`StoreError`, :class:`InvalidName`);
- :class:`ErrorCode`, the protocol's error codes (``ClientError(ErrorCode.PERMISSION_DENIED)``);
- :class:`Settings`, the configuration (``hub.settings()``), and ``__version__``.

Public modules besides (:data:`_PUBLIC_MODULES`): :mod:`hubbub.outbox` (its ``__all__``:
``from hubbub import outbox; await outbox.publish(conn, channel, data)``) and
:mod:`hubbub.webhooks` (``verify``, for backends that receive hubbub's webhooks) and
:mod:`hubbub.pusher` (the signatures of a Pusher app's auth endpoints, docs/pusher.md).

Every other module is hubbub's own and may change. The names are loaded on first use, so
``import hubbub.core.codes`` (or the ``hubbub`` command) does not load the hub and its
settings model until it needs them.
"""

# Imported under private names: the package's public names are __all__ (and its submodules).
import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_EXPORTS: _typing.Final = {
    "Hub": "hubbub.hub",
    "ConnectContext": "hubbub.hooks",
    "ConnectResult": "hubbub.hooks",
    "SubscribeContext": "hubbub.hooks",
    "SubscribeResult": "hubbub.hooks",
    "PublishContext": "hubbub.hooks",
    "PublishResult": "hubbub.hooks",
    "RPCContext": "hubbub.hooks",
    "MessageContext": "hubbub.hooks",
    "DisconnectContext": "hubbub.hooks",
    "ConnectHook": "hubbub.hooks",
    "SubscribeHook": "hubbub.hooks",
    "PublishHook": "hubbub.hooks",
    "RPCHandler": "hubbub.hooks",
    "MessageHook": "hubbub.hooks",
    "DisconnectHook": "hubbub.hooks",
    "StartupHook": "hubbub.hooks",
    "HubbubError": "hubbub.errors",
    "ClientError": "hubbub.errors",
    "DisconnectError": "hubbub.errors",
    "ConfigError": "hubbub.errors",
    "ListenError": "hubbub.errors",
    "InvalidName": "hubbub.errors",
    "StoreError": "hubbub.errors",
    "ErrorCode": "hubbub.core.codes",
    "Settings": "hubbub.config",
}

#: Submodules that are public API too (each offers its own ``__all__``).
_PUBLIC_MODULES: _typing.Final = ("outbox", "pusher", "webhooks")

__all__ = [
    "ClientError",
    "ConfigError",
    "ConnectContext",
    "ConnectHook",
    "ConnectResult",
    "DisconnectContext",
    "DisconnectError",
    "DisconnectHook",
    "ErrorCode",
    "Hub",
    "HubbubError",
    "InvalidName",
    "ListenError",
    "MessageContext",
    "MessageHook",
    "PublishContext",
    "PublishHook",
    "PublishResult",
    "RPCContext",
    "RPCHandler",
    "Settings",
    "StartupHook",
    "StoreError",
    "SubscribeContext",
    "SubscribeHook",
    "SubscribeResult",
    "__version__",
]

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from hubbub.config import Settings
    from hubbub.core.codes import ErrorCode
    from hubbub.errors import (
        ClientError,
        ConfigError,
        DisconnectError,
        HubbubError,
        InvalidName,
        ListenError,
        StoreError,
    )
    from hubbub.hooks import (
        ConnectContext,
        ConnectHook,
        ConnectResult,
        DisconnectContext,
        DisconnectHook,
        MessageContext,
        MessageHook,
        PublishContext,
        PublishHook,
        PublishResult,
        RPCContext,
        RPCHandler,
        StartupHook,
        SubscribeContext,
        SubscribeHook,
        SubscribeResult,
    )
    from hubbub.hub import Hub


def __getattr__(name: str) -> _typing.Any:
    """A public name, imported from its module on first use (then cached here)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hubbub' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
