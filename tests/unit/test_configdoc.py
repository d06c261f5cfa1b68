"""The configuration reference is generated from the settings model: every key has a
description, the README's tables are what the model says, and the docs page names every key
with its environment variable and flag."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from hubbub import configdoc
from hubbub.channeloptions import ChannelOptions, Namespace
from hubbub.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


@pytest.mark.parametrize("model", [Settings, Namespace], ids=lambda m: m.__name__)
def test_every_key_has_a_description(model: type[BaseModel]) -> None:
    """A key without one would have no meaning in the reference (the generator refuses it)."""
    assert [k for k, f in model.model_fields.items() if not (f.description or "").strip()] == []


def test_the_readme_tables_are_generated_from_the_settings() -> None:
    """README.md's Configuration tables are exactly what the model gives (run `make readme`
    after changing a setting or its description)."""
    text = README.read_text("utf-8")
    start = text.index(configdoc.README_BEGIN)
    end = text.index(configdoc.README_END) + len(configdoc.README_END)
    assert text[start:end] == configdoc.readme_block()


def test_every_key_is_a_row() -> None:
    """(So that the test above cannot pass on tables that leave keys out.)"""
    block = configdoc.readme_block()
    for key in [*Settings.model_fields, *ChannelOptions.model_fields, "name"]:
        assert f"| `{key}` |" in block, key


@pytest.mark.parametrize(
    ("field", "shown"),
    [
        (Settings.model_fields["port"], "`8765`"),
        (Settings.model_fields["history_meta_ttl"], "`2592000`"),
        (Settings.model_fields["compression"], "`true`"),
        (Settings.model_fields["engine"], '`"memory"`'),
        (Settings.model_fields["data_dir"], '`"data"`'),
        (Settings.model_fields["allowed_origins"], "`[]`"),
        (Settings.model_fields["api_key"], "none"),
        (Namespace.model_fields["name"], "required"),
        (
            Settings.model_fields["channel"],
            "`history_size = 1000`, `history_ttl = 86400`, `presence = true`, "
            "`join_leave = true`, `force_recovery = true`",
        ),
    ],
)
def test_defaults_are_shown_as_toml(field: object, shown: str) -> None:
    assert configdoc.default_text(field) == shown  # type: ignore[arg-type]


def test_a_key_without_a_description_is_refused() -> None:
    class Bare(BaseModel):
        documented: int = Field(1, description="Has one.")
        bare: int = 2

    with pytest.raises(ValueError, match=r"Bare\.bare has no description"):
        configdoc._table(Bare, list(Bare.model_fields))


def test_a_pipe_in_a_description_does_not_break_the_table() -> None:
    class Piped(BaseModel):
        key: str = Field("a|b", description="one | two")

    row = configdoc._table(Piped, ["key"]).splitlines()[2]
    assert row == '| `key` | `"a\\|b"` | one \\| two |'


def test_the_docs_page_names_each_key_its_variable_and_flag() -> None:
    page = configdoc.reference_page(configdoc.serve_flags())
    for key in Settings.model_fields:
        assert f"`HUBBUB_{key.upper()}`" in page, key
    assert "`--port`" in page
    assert "`--allow-anonymous / --no-allow-anonymous`" in page
    assert "## Channel options" in page


def test_check_and_rewrite(tmp_path: Path) -> None:
    """`python -m hubbub.configdoc --check` fails on a stale README; without --check it
    rewrites the block and leaves the rest alone."""
    stale = tmp_path / "README.md"
    fresh = README.read_text("utf-8")
    stale.write_text(fresh.replace("| `port` | `8765` |", "| `port` | `8000` |"))
    assert configdoc.main(["--check", str(stale)]) == 1
    assert configdoc.main([str(stale)]) == 0
    assert stale.read_text("utf-8") == fresh
    assert configdoc.main(["--check", str(stale)]) == 0
    assert configdoc.main([]) == 2
