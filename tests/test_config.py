import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from boxoffice.config import ConfigError, Settings

POSTGRES_URL = "postgresql+asyncpg://boxoffice@127.0.0.1/boxoffice"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets itself reaches Settings."""
    for name in list(os.environ):
        if name.startswith("BOXOFFICE_"):
            monkeypatch.delenv(name)


def embedded(var_dir: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{var_dir / 'boxoffice.db'}", var_dir=var_dir)


def test_embedded_mode_generates_a_jwt_secret_under_var_dir_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    secret = embedded(tmp_path).signing_secret

    path = tmp_path / "jwt-secret"
    assert path.read_text(encoding="utf-8").strip() == secret
    assert len(secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["jwt-secret"]


def test_embedded_mode_reuses_its_generated_secret_across_settings(tmp_path: Path) -> None:
    assert embedded(tmp_path).signing_secret == embedded(tmp_path).signing_secret


def test_a_configured_jwt_secret_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(jwt_secret="s" * 32, var_dir=tmp_path)
    assert settings.signing_secret == "s" * 32
    assert list(tmp_path.iterdir()) == []


def test_postgresql_without_a_jwt_secret_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="BOXOFFICE_JWT_SECRET must be set"):
        Settings(database_url=POSTGRES_URL)


def test_a_jwt_secret_shorter_than_32_characters_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 32 characters"):
        Settings(database_url=POSTGRES_URL, jwt_secret="s" * 31)


@pytest.mark.parametrize(
    "url",
    ["mysql+aiomysql://root@localhost/boxoffice", "postgresql://u@h/db", "sqlite:///x.db"],
)
def test_an_unsupported_database_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="use sqlite\\+aiosqlite"):
        Settings(database_url=url, jwt_secret="s" * 32)


def test_cors_origins_from_the_environment_are_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOXOFFICE_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOXOFFICE_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("BOXOFFICE_JWT_SECRET", "e" * 40)
    monkeypatch.setenv("BOXOFFICE_RATE_LIMITS", "false")
    settings = Settings()
    assert (settings.database_url, settings.signing_secret, settings.rate_limits) == (
        POSTGRES_URL,
        "e" * 40,
        False,
    )
    assert not settings.is_embedded
