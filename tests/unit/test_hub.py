"""Hub.settings and Hub.run's arguments (serving itself: tests/e2e/test_hub_inprocess.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubbub import ConfigError, Hub


def test_settings_layers_flags_over_the_file_over_the_hubs_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUBBUB_CONFIG", raising=False)
    monkeypatch.delenv("HUBBUB_PORT", raising=False)
    cfg = tmp_path / "hubbub.toml"
    cfg.write_text('port = 7001\nlog_level = "debug"\n')
    hub = Hub(port=7000, ping_interval=7)
    assert hub.settings().port == 7000
    settings = hub.settings(cfg)
    assert (settings.port, settings.log_level, settings.ping_interval) == (7001, "debug", 7)
    assert hub.settings(str(cfg), port=7002).port == 7002


def test_run_refuses_a_bad_key_and_several_workers() -> None:
    """Before anything is started: a ConfigError naming the key."""
    hub = Hub()
    with pytest.raises(ConfigError, match="no_such_key"):
        hub.run(no_such_key=1)
    with pytest.raises(ConfigError, match="--workers"):
        hub.run(workers=2, engine="redis://127.0.0.1:1/0")
