"""The configuration reference, generated from the settings model.

The meaning of each key is written once, as its field's ``description`` in
:mod:`hubbub.config` (:class:`~hubbub.config.Settings`) and :mod:`hubbub.channeloptions`
(:class:`~hubbub.channeloptions.ChannelOptions`); its default is the field's default. This
module renders them as Markdown, for the docs site (its configuration page is made at build
time: ``scripts/mkdocs_hooks.py``) and for the README's table, so neither can drift:

- :func:`settings_table` and :func:`channel_options_table`: ``| key | default | meaning |``;
- :func:`readme_block`: both, between :data:`README_BEGIN` and :data:`README_END`;
  ``python -m hubbub.configdoc README.md`` rewrites that block in place (``make readme``)
  and ``--check`` exits 1 when it differs;
- :func:`reference_page`: the docs site's page, a section per key (an anchor to link to)
  with its environment variable and, where ``hubbub serve`` has one, its flag.

Pure: nothing here reads files or the environment except :func:`main`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from hubbub.channeloptions import ChannelOptions, Namespace
from hubbub.config import Settings, env_name
from hubbub.pushersettings import PusherApp

README_BEGIN: Final = (
    "<!-- configuration: generated from src/hubbub/config.py and channeloptions.py by "
    "`make readme`; edit the descriptions there -->"
)
README_END: Final = "<!-- end of the generated configuration -->"


def toml_value(value: Any) -> str:
    """``value`` as it is written in TOML (``true``, ``"memory"``, ``25``, ``[]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def default_text(field: FieldInfo) -> str:
    """A field's default as a table cell: its TOML value, ``none``, ``required``, or for a
    table (a model made by a factory) the keys it sets apart from that model's defaults."""
    if field.default_factory is not None:
        made = field.default_factory()  # type: ignore[call-arg]
        if isinstance(made, BaseModel):
            plain = type(made)()
            changed = [
                f"`{key} = {toml_value(getattr(made, key))}`"
                for key in type(made).model_fields
                if getattr(made, key) != getattr(plain, key)
            ]
            return ", ".join(changed) or "the defaults below"
        return f"`{toml_value(made)}`"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "none"
    return f"`{toml_value(field.default)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _meaning(model: type[BaseModel], key: str) -> str:
    description = model.model_fields[key].description
    if not description:
        raise ValueError(f"{model.__name__}.{key} has no description")
    return description


def _table(model: type[BaseModel], keys: Sequence[str], header: str = "key") -> str:
    lines = [f"| {header} | default | meaning |", "|---|---|---|"]
    for key in keys:
        field = model.model_fields[key]
        lines.append(f"| `{key}` | {_cell(default_text(field))} | {_cell(_meaning(model, key))} |")
    return "\n".join(lines) + "\n"


def settings_table() -> str:
    """Every setting (every field of :class:`Settings`), in the model's order."""
    return _table(Settings, list(Settings.model_fields))


def channel_options_table() -> str:
    """Every channel option (of ``[channel]`` and each ``[[namespaces]]``), ``name`` first."""
    keys = ["name", *ChannelOptions.model_fields]
    lines = _table(Namespace, keys, header="option").splitlines()
    lines[2] = lines[2].replace("| required |", "| required (namespaces only) |")
    return "\n".join(lines) + "\n"


def pusher_app_table() -> str:
    """Every key of a ``[[pusher_apps]]`` entry."""
    return _table(PusherApp, list(PusherApp.model_fields), header="option")


def readme_block() -> str:
    """The README's generated part: the tables between the markers."""
    return (
        f"{README_BEGIN}\n\n{settings_table()}\n"
        "Channel options, in `[channel]` and in each `[[namespaces]]` entry:\n\n"
        f"{channel_options_table()}\n"
        "Keys of each `[[pusher_apps]]` entry (docs/pusher.md):\n\n"
        f"{pusher_app_table()}\n{README_END}"
    )


def replace_block(text: str, block: str) -> str:
    """``text`` with its generated block (markers included) replaced by ``block``."""
    start = text.find(README_BEGIN)
    end = text.find(README_END)
    if start < 0 or end < start:
        raise ValueError("the generated configuration's markers are missing")
    return text[:start] + block + text[end + len(README_END) :]


def serve_flags() -> dict[str, str]:
    """The ``hubbub serve`` flag of each setting that has one (``{"port": "--port"}``)."""
    import click

    from hubbub.cli import serve

    flags: dict[str, str] = {}
    for param in serve.params:
        named = isinstance(param, click.Option) and not param.hidden and param.name
        if named and param.name in Settings.model_fields:
            flags[param.name] = " / ".join([*param.opts, *param.secondary_opts])
    return flags


PAGE_INTRO: Final = """\
# Configuration reference

This page is generated from hubbub's settings model (`src/hubbub/config.py` and
`src/hubbub/channeloptions.py`) when the site is built: the meanings and defaults below are
those of the code it was built from.

Settings come in four layers, the highest first: `hubbub serve` flags, `HUBBUB_*`
environment variables, the TOML file (`--config FILE`, else `$HUBBUB_CONFIG`, else
`./hubbub.toml` if it exists), then defaults (a `Hub(...)`'s keyword arguments come between
the file and hubbub's defaults). A key has the same name everywhere: `max_message_size` in
TOML is `HUBBUB_MAX_MESSAGE_SIZE` in the environment and `--max-message-size` on the command
line (the keys below with no flag are set in the file, the environment or the `Hub`). Unknown
keys and bad values are refused with a message naming the key and where its value came from;
`hubbub checkconfig FILE` checks a file, and `hubbub genconfig -o hubbub.toml` writes a
commented production configuration with fresh secrets.

```toml
port = 8765
max_message_size = 1048576
allowed_origins = ["https://app.example.com"]

[[namespaces]]
name = "chat"
history_size = 100
history_ttl = 3600
presence = true
join_leave = true
force_recovery = true
allow_publish_for_anonymous = false
```

## Settings

"""


def _entries(model: type[BaseModel], keys: Sequence[str], flags: Mapping[str, str]) -> str:
    """One section per key: its heading (an anchor), where it is set, its default, its
    meaning."""
    parts = []
    for key in keys:
        field = model.model_fields[key]
        where = [f"`{env_name(key)}`"] if model is Settings else []
        if key in flags:
            where.append(f"`{flags[key]}`")
        where.append(f"default: {default_text(field)}")
        parts.append(f"### `{key}`\n\n{' · '.join(where)}\n\n{_meaning(model, key)}\n")
    return "\n".join(parts)


def reference_page(flags: Mapping[str, str]) -> str:
    """The docs site's configuration page; ``flags`` from :func:`serve_flags`."""
    return (
        PAGE_INTRO
        + _entries(Settings, list(Settings.model_fields), flags)
        + "\n## Channel options\n\n"
        + "What a channel does and who may do what in it: the `[channel]` table holds the "
        "options of channels without a namespace, each `[[namespaces]]` entry those of the "
        "channels `name:...` (`name` is required there). Permissions come in pairs: "
        "`*_for_client` for authenticated connections, `*_for_anonymous` for anonymous ones; "
        "an application hook for the action, when there is one, is asked after the flags.\n\n"
        + _entries(Namespace, ["name", *ChannelOptions.model_fields], {})
        + "\n## Pusher apps\n\n"
        + "Each `[[pusher_apps]]` entry is one app of the Pusher protocol (docs/pusher.md): "
        "`id`, `key` and `secret` are required.\n\n"
        + _entries(PusherApp, list(PusherApp.model_fields), {})
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hubbub.configdoc [--check] README.md``: rewrite (or check) its block."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    if len(paths) != 1:
        print("usage: python -m hubbub.configdoc [--check] README.md", file=sys.stderr)
        return 2
    path = Path(paths[0])
    text = path.read_text("utf-8")
    new = replace_block(text, readme_block())
    if new == text:
        return 0
    if check:
        print(f"{path}: the configuration tables differ from config.py: run `make readme`")
        return 1
    path.write_text(new, "utf-8")
    print(f"{path}: configuration tables regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
