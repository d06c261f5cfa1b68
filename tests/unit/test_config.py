"""Settings: precedence of layers and refusal of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubbub.config import Settings, load_settings
from hubbub.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./hubbub.toml lying around


def test_defaults() -> None:
    s = load_settings(environ={})
    assert (s.host, s.port, s.max_message_size) == ("127.0.0.1", 8765, 65536)
    assert s.allowed_origins == ()


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    """flags > HUBBUB_* > TOML > defaults, key by key."""
    cfg = tmp_path / "h.toml"
    cfg.write_text('port = 1111\nhost = "0.0.0.0"\nping_interval = 5\n')
    env = {"HUBBUB_PORT": "2222", "HUBBUB_HOST": "::1"}
    s = load_settings({"port": 3333, "host": None}, config_file=cfg, environ=env)
    assert s.port == 3333  # flag
    assert s.host == "::1"  # env (the None flag is "not given")
    assert s.ping_interval == 5.0  # file
    assert s.pong_timeout == 10.0  # default


def test_hubbub_toml_in_cwd_and_hubbub_config_env(tmp_path: Path) -> None:
    (tmp_path / "hubbub.toml").write_text("port = 1\n")
    assert load_settings(environ={}).port == 1
    other = tmp_path / "other.toml"
    other.write_text("port = 2\n")
    assert load_settings(environ={"HUBBUB_CONFIG": str(other)}).port == 2


def test_origins_from_env_are_comma_separated() -> None:
    s = load_settings(environ={"HUBBUB_ALLOWED_ORIGINS": "https://A.example, http://b:8080"})
    assert s.allowed_origins == ("https://a.example", "http://b:8080")


@pytest.mark.parametrize(
    ("env", "file_text", "expected"),
    [
        (
            {"HUBBUB_PORT": "70000"},
            None,
            "HUBBUB_PORT: Input should be less than or equal to 65535 (from environment)",
        ),
        ({"HUBBUB_PORT": "abc"}, None, "HUBBUB_PORT: Input should be a valid integer"),
        ({"HUBBUB_NOPE": "1"}, None, "HUBBUB_NOPE: unknown setting (from environment)"),
        ({}, "max_mesage_size = 10\n", "max_mesage_size: unknown setting"),
        ({}, "ping_interval = -1\n", "ping_interval: Input should be greater than 0"),
        ({}, 'allowed_origins = ["https://a.example/path/"]\n', "allowed_origins: Value error"),
        ({}, "port = [", "config file"),
        (
            {},
            '[[namespaces]]\nname = "d"\nallowed_delta_types = ["xdelta"]\n',
            "namespaces.0.allowed_delta_types.0: Input should be 'fossil'",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_key(
    tmp_path: Path, env: dict[str, str], file_text: str | None, expected: str
) -> None:
    cfg = None
    if file_text is not None:
        cfg = tmp_path / "bad.toml"
        cfg.write_text(file_text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=cfg, environ=env)
    assert expected in str(info.value)


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValueError, match="frozen"):
        s.port = 1  # type: ignore[misc]


def test_a_namespace_with_auto_cache_recover_needs_cache_mode(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[[namespaces]]\nname = "x"\nhistory_size = 1\nhistory_ttl = 1\nauto_cache_recover = true\n'
    )
    with pytest.raises(ConfigError, match="auto_cache_recover needs force_recovery"):
        load_settings(config_file=config)


def test_delta_options_from_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text(
        "[channel]\ndelta_publish = true\n"
        '[[namespaces]]\nname = "d"\nallowed_delta_types = ["fossil"]\n'
    )
    s = load_settings(config_file=cfg, environ={})
    assert (s.channel.allowed_delta_types, s.channel.delta_publish) == ((), True)
    assert (s.namespaces[0].allowed_delta_types, s.namespaces[0].delta_publish) == (
        ("fossil",),
        False,
    )


def test_edge_settings_defaults_trust_nobody() -> None:
    """No TLS, no trusted proxy, no access log unless configured."""
    settings = load_settings({}, environ={})
    assert (settings.tls_cert, settings.tls_key) == (None, None)
    assert settings.trusted_proxies == () and settings.access_log is False


def test_trusted_proxies_are_networks(tmp_path: Path) -> None:
    """CIDRs (v4 and v6, bare addresses) are normalized; comma-separated in the
    environment; anything else is refused naming the key."""
    env = {"HUBBUB_TRUSTED_PROXIES": "127.0.0.1, 10.1.2.3/8,::1"}
    assert load_settings({}, environ=env).trusted_proxies == (
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
    )
    cfg = tmp_path / "h.toml"
    cfg.write_text('trusted_proxies = ["fd00::/8", "nginx"]\n')
    with pytest.raises(ConfigError, match=r"trusted_proxies: .*'nginx' is not an IP network"):
        load_settings({}, config_file=cfg, environ={})


def test_tls_cert_and_key_come_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_key is set but tls_cert is not: give both"):
        load_settings({}, environ={"HUBBUB_TLS_KEY": str(tmp_path / "k.pem")})
