"""Configuration from the environment and a .env file (docs/architecture.md, "Contracts"): bot.config.load_settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


def test_defaults() -> None:
    """With nothing set, it uses ./antam-data, 127.0.0.1:8080, 180 days and SQLite in the data dir."""
    settings = load_settings(environ={}, env_file=None)
    assert settings.data_dir == Path("antam-data")
    assert settings.http_host == "127.0.0.1"
    assert settings.http_port == 8080
    assert settings.retention_days == 180
    assert settings.database_url is None
    assert settings.effective_database_url == "sqlite+aiosqlite:///antam-data/antam.db"
    assert settings.key_file == Path("antam-data") / "master.key"
    assert settings.public_url is None
    assert settings.master_key is None


def test_key_file_path_is_a_setting(tmp_path: Path) -> None:
    """ANTAM_MASTER_KEY_FILE moves the key file out of the data dir; only the default is "beside"."""
    default = load_settings(environ={"ANTAM_DATA_DIR": str(tmp_path / "d")}, env_file=None)
    assert default.key_file == tmp_path / "d" / "master.key" and default.key_beside_data
    moved = load_settings(
        environ={"ANTAM_DATA_DIR": str(tmp_path / "d"), "ANTAM_MASTER_KEY_FILE": str(tmp_path / "k" / "key")},
        env_file=None,
    )
    assert moved.key_file == tmp_path / "k" / "key" and not moved.key_beside_data
    inside = load_settings(
        environ={"ANTAM_DATA_DIR": str(tmp_path / "d"), "ANTAM_MASTER_KEY_FILE": str(tmp_path / "d" / "x.key")},
        env_file=None,
    )
    assert inside.key_beside_data
    postgres = load_settings(environ={"ANTAM_DATABASE_URL": "postgresql://u@db/antam"}, env_file=None)
    assert not postgres.key_beside_data


def test_sqlite_url_follows_the_data_dir(tmp_path: Path) -> None:
    """The default SQLite database lives inside ANTAM_DATA_DIR."""
    settings = load_settings(environ={"ANTAM_DATA_DIR": str(tmp_path / "d")}, env_file=None)
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{(tmp_path / 'd' / 'antam.db').as_posix()}"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/antam", "postgresql+asyncpg://u:p@db:5432/antam"),
        ("postgresql://u@db/antam", "postgresql+asyncpg://u@db/antam"),
        ("postgresql+asyncpg://u@db/antam", "postgresql+asyncpg://u@db/antam"),
        ("sqlite:////var/lib/antam.db", "sqlite+aiosqlite:////var/lib/antam.db"),
    ],
)
def test_database_urls_get_the_async_driver(given: str, expected: str) -> None:
    """postgres:// and postgresql:// (and sqlite://) URLs are turned into their async-driver form."""
    settings = load_settings(environ={"ANTAM_DATABASE_URL": given}, env_file=None)
    assert settings.database_url == expected
    assert settings.effective_database_url == expected


def test_empty_strings_count_as_unset() -> None:
    """An empty variable is treated as not set, so the default applies."""
    settings = load_settings(
        environ={"ANTAM_HTTP_PORT": "", "ANTAM_DATABASE_URL": "", "ANTAM_PUBLIC_URL": "", "ANTAM_MASTER_KEY": ""},
        env_file=None,
    )
    assert settings.http_port == 8080
    assert settings.database_url is None
    assert settings.public_url is None
    assert settings.master_key is None


def test_every_bad_variable_is_named() -> None:
    """The ConfigError lists every invalid variable by name, not only the first."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"ANTAM_HTTP_PORT": "abc", "ANTAM_RETENTION_DAYS": "0"}, env_file=None)
    message = str(caught.value)
    assert "ANTAM_HTTP_PORT" in message
    assert "ANTAM_RETENTION_DAYS" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ANTAM_HTTP_PORT", "70000"),
        ("ANTAM_DATABASE_URL", "mysql://x"),
        ("ANTAM_LOG_LEVEL", "LOUD"),
        ("TELEGRAM_API_BASE_URL", "ftp://example.org"),
        ("ZALO_EVENT_MAX_AGE", "10"),
        ("ZALO_EVENT_MAX_AGE", "604800"),
        ("ANTAM_METRICS_ALLOW", "localhost"),
    ],
)
def test_invalid_values_are_rejected_by_name(name: str, value: str) -> None:
    """An out-of-range or malformed value raises ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        load_settings(environ={name: value}, env_file=None)


def test_public_url_must_be_https() -> None:
    """ANTAM_PUBLIC_URL over plain http is refused (webhooks need TLS) except on a loopback host,
    as docs/architecture.md, "Contracts" allows for a local Bot API server; https is accepted."""
    for refused in ("http://example.org", "http://10.0.0.5:8080", "http://127.example.org"):
        with pytest.raises(ConfigError, match="ANTAM_PUBLIC_URL"):
            load_settings(environ={"ANTAM_PUBLIC_URL": refused}, env_file=None)
    for loopback in ("http://127.0.0.1:8443", "http://localhost:8080", "http://[::1]:8080"):
        assert load_settings(environ={"ANTAM_PUBLIC_URL": loopback}, env_file=None).public_url == loopback
    settings = load_settings(environ={"ANTAM_PUBLIC_URL": "https://example.org/"}, env_file=None)
    assert settings.public_url == "https://example.org"


def test_webhook_secret_with_a_space_is_rejected() -> None:
    """TELEGRAM_WEBHOOK_SECRET must be Telegram's secret-token alphabet; a space is refused."""
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
        load_settings(environ={"TELEGRAM_WEBHOOK_SECRET": "two words"}, env_file=None)
    ok = load_settings(environ={"TELEGRAM_WEBHOOK_SECRET": "Abc_123-xyz"}, env_file=None)
    assert ok.telegram_webhook_secret is not None
    assert ok.telegram_webhook_secret.get_secret_value() == "Abc_123-xyz"


def test_env_file_is_read_and_the_environment_overrides_it(tmp_path: Path) -> None:
    """Values come from the .env file unless the environment sets the same name."""
    env_file = tmp_path / ".env"
    env_file.write_text("ANTAM_HTTP_PORT=9000\nANTAM_RETENTION_DAYS=30\nANTAM_HTTP_HOST=0.0.0.0\n", encoding="utf-8")
    settings = load_settings(environ={"ANTAM_HTTP_PORT": "9100"}, env_file=env_file)
    assert settings.http_port == 9100
    assert settings.retention_days == 30
    assert settings.http_host == "0.0.0.0"


def test_a_missing_env_file_is_fine(tmp_path: Path) -> None:
    """A .env path that does not exist is simply skipped."""
    settings = load_settings(environ={"ANTAM_RETENTION_DAYS": "7"}, env_file=tmp_path / "no-such.env")
    assert settings.retention_days == 7


def test_unknown_variables_are_ignored() -> None:
    """Variables that are not An Tâm settings (PATH, HOME, …) do not disturb validation."""
    settings = load_settings(environ={"PATH": "/bin", "ANTAM_SOMETHING_ELSE": "x"}, env_file=None)
    assert settings.http_port == 8080


def test_secrets_are_not_shown_in_repr() -> None:
    """Secret values do not appear when the settings are printed."""
    key = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE"
    settings = load_settings(environ={"ANTAM_MASTER_KEY": key, "TELEGRAM_BOT_TOKEN": "123:SECRETTOKEN"}, env_file=None)
    shown = repr(settings) + str(settings)
    assert key not in shown
    assert "SECRETTOKEN" not in shown


def test_trusted_proxies_are_validated_and_used() -> None:
    """ANTAM_TRUSTED_PROXIES takes addresses and networks; the client is the right-most untrusted hop."""
    from aiohttp.test_utils import make_mocked_request

    from bot.client_address import client_address, parse_networks

    with pytest.raises(ConfigError, match="ANTAM_TRUSTED_PROXIES"):
        load_settings({"ANTAM_TRUSTED_PROXIES": "10.0.0.1, not-an-ip"}, env_file=None)
    networks = load_settings({"ANTAM_TRUSTED_PROXIES": "10.0.0.1, 172.18.0.0/16"}, env_file=None).proxy_networks
    assert networks == parse_networks("10.0.0.1,172.18.0.0/16")
    forged = {"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 172.18.0.5"}
    behind = make_mocked_request("GET", "/", headers=forged, transport=_Transport("10.0.0.1"))
    assert client_address(behind, networks) == "203.0.113.9"
    direct = make_mocked_request("GET", "/", headers=forged, transport=_Transport("198.51.100.7"))
    assert client_address(direct, networks) == "198.51.100.7", "an untrusted peer's header is ignored"
    assert client_address(behind, ()) == "10.0.0.1"


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.peer, 12345) if name == "peername" else default
