"""Settings: server-free defaults, file < environment < overrides, and one error listing every bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from plexica.settings import (
    AuthSettings,
    CacheSettings,
    DatabaseSettings,
    EventSettings,
    HttpSettings,
    KeycloakSettings,
    Settings,
    StorageSettings,
    load_settings,
)
from plexica_sdk.errors import SettingsError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ defaults


def test_defaults_need_no_server() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.database.url is None  # SQLite files under data_dir
    assert settings.cache.redis_url is None  # the in-process cache
    assert (settings.storage.backend, settings.storage.s3_endpoint) == ("local", None)
    assert (settings.events.backend, settings.events.bootstrap_servers) == ("memory", None)
    assert settings.auth.keycloak is None  # the dev token issuer
    assert settings.is_development


@pytest.mark.parametrize(
    ("environment", "is_development"),
    [("development", True), ("test", True), ("production", False)],
)
def test_development_and_test_count_as_development(environment: str, is_development: bool) -> None:
    keycloak = {"keycloak": {"url": "http://kc"}}  # production refuses the dev token issuer
    assert load_settings(environ={}, environment=environment, auth=keycloak).is_development is is_development


def test_settings_are_frozen_and_varied_with_evolve() -> None:
    settings = Settings()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.environment = "production"  # type: ignore[misc]
    production = attrs.evolve(settings, environment="production")
    assert (settings.environment, production.environment) == ("development", "production")


def test_secrets_never_appear_in_the_repr() -> None:
    settings = load_settings(
        environ={},
        secret_key="url-signing-secret",
        storage={"s3_access_key": "AKIDSECRET", "s3_secret_key": "s3-secret-value"},
        auth={"gateway_key": "gateway-secret", "keycloak": {"url": "http://kc", "admin_password": "kc-secret"}},
    )
    text = repr(settings)
    for secret in ("url-signing-secret", "AKIDSECRET", "s3-secret-value", "gateway-secret", "kc-secret"):
        assert secret not in text


# ------------------------------------------------------------------- sources


def test_values_come_from_the_toml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "plexica.toml",
        """
        environment = "production"
        data_dir = "/var/lib/plexica"
        plugins = ["acme_notes:NotesPlugin"]

        [database]
        url = "postgresql+asyncpg://db/plexica"
        pool_size = 20

        [auth.keycloak]
        url = "https://id.example.com"
        strategy = "organizations"
        """,
    )
    settings = load_settings(path, environ={})
    assert settings.environment == "production"
    assert settings.data_dir == Path("/var/lib/plexica")
    assert settings.plugins == ("acme_notes:NotesPlugin",)
    assert settings.database == DatabaseSettings(url="postgresql+asyncpg://db/plexica", pool_size=20)
    assert settings.auth.keycloak == KeycloakSettings(url="https://id.example.com", strategy="organizations")


def test_the_plexica_settings_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "plexica.toml", "[http]\nport = 9100\n")
    assert load_settings(environ={"PLEXICA_SETTINGS": str(path)}).http.port == 9100


def test_an_explicit_path_beats_the_plexica_settings_variable(tmp_path: Path) -> None:
    chosen = write(tmp_path / "chosen.toml", "[http]\nport = 9100\n")
    ignored = write(tmp_path / "ignored.toml", "[http]\nport = 9200\n")
    assert load_settings(chosen, environ={"PLEXICA_SETTINGS": str(ignored)}).http.port == 9100


def test_environment_beats_the_file_and_overrides_beat_both(tmp_path: Path) -> None:
    path = write(
        tmp_path / "plexica.toml",
        """
        [http]
        host = "10.0.0.5"
        port = 1000
        [cache]
        ttl_seconds = 10
        [database]
        url = "postgresql://from-file/db"
        """,
    )
    environ = {"PLEXICA_HTTP__PORT": "2000", "PLEXICA_DATABASE__ECHO": "true", "PLEXICA_CACHE__TTL_SECONDS": "20"}
    settings = load_settings(path, environ=environ, http={"port": 3000}, cache={"ttl_seconds": 30})
    assert settings.http == HttpSettings(host="10.0.0.5", port=3000)  # an override keeps the file's other keys
    assert settings.cache == CacheSettings(ttl_seconds=30)
    assert settings.database == DatabaseSettings(url="postgresql://from-file/db", echo=True)


@pytest.mark.parametrize(
    ("variable", "raw", "section", "expected"),
    [
        ("PLEXICA_HTTP__PORT", "9000", "http", HttpSettings(port=9000)),
        ("PLEXICA_DATABASE__ECHO", "true", "database", DatabaseSettings(echo=True)),
        ("PLEXICA_EVENTS__RETRY_BACKOFF_SECONDS", "0.25", "events", EventSettings(retry_backoff_seconds=0.25)),
        ("PLEXICA_PLUGINS", '["a.b:C", "d:E"]', "plugins", ("a.b:C", "d:E")),
        (
            "PLEXICA_DATABASE__URL",
            "postgresql://u@db:5432/x",
            "database",
            DatabaseSettings(url="postgresql://u@db:5432/x"),
        ),
        ("PLEXICA_HTTP__TENANT_HOST_SUFFIX", "null", "http", HttpSettings(tenant_host_suffix=None)),
        (
            "PLEXICA_AUTH__KEYCLOAK",
            '{"url": "http://kc", "realm_template": "t-{slug}"}',
            "auth",
            AuthSettings(keycloak=KeycloakSettings(url="http://kc", realm_template="t-{slug}")),
        ),
        ("PLEXICA_AUTH__KEYCLOAK__URL", "http://kc", "auth", AuthSettings(keycloak=KeycloakSettings(url="http://kc"))),
    ],
    ids=["int", "bool", "float", "list", "plain-string", "null", "json-object", "three-levels"],
)
def test_environment_values_are_parsed_as_json_when_they_are_json(
    variable: str, raw: str, section: str, expected: Any
) -> None:
    assert getattr(load_settings(environ={variable: raw}), section) == expected


def test_unrelated_and_control_variables_are_not_settings(tmp_path: Path) -> None:
    path = write(tmp_path / "plexica.toml", "")
    environ = {"HOME": "/root", "PLEXICA_SETTINGS": str(path), "PLEXICA_REQUIRE_SERVICES": "1", "PLEXICAX": "1"}
    assert load_settings(environ=environ) == Settings()


def test_data_dir_becomes_a_path() -> None:
    assert load_settings(environ={"PLEXICA_DATA_DIR": "/srv/plexica-data"}).data_dir == Path("/srv/plexica-data")


@pytest.mark.parametrize(
    ("variable", "raw", "read"),
    [
        ("PLEXICA_STORAGE__S3_SECRET_KEY", "1e3", lambda s: s.storage.s3_secret_key),
        ("PLEXICA_AUTH__AUDIENCE", "1.10", lambda s: s.auth.audience),
        ("PLEXICA_HTTP__HOST", "true", lambda s: s.http.host),
    ],
    ids=["exponent-secret", "version-like", "bool-like"],
)
def test_string_settings_keep_the_exact_text_of_json_looking_variables(variable: str, raw: str, read: Any) -> None:
    # "1e3" must not become "1000.0", "1.10" not "1.1", "true" not "True".
    assert read(load_settings(environ={variable: raw})) == raw


# -------------------------------------------------------------------- errors


def test_one_error_lists_every_bad_key_from_every_source(tmp_path: Path) -> None:
    path = write(tmp_path / "plexica.toml", 'nope = 1\n[database]\nbogus = true\n[events]\nbackend = "rabbit"\n')
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path, environ={"PLEXICA_HTTP__PORT": '"eighty"'}, cache={"ttl_seconds": 0})
    problems = excinfo.value.problems
    assert "extra fields found (nope) @ settings" in problems  # unknown key
    assert "extra fields found (bogus) @ settings.database" in problems  # unknown key in a section
    assert "invalid value for type, expected int @ settings.http.port" in problems  # wrong type
    assert any(p.endswith("@ settings.events.backend") and "rabbit" in p for p in problems)  # not an allowed value
    assert any(p.endswith("@ settings.cache") for p in problems)  # failing validator
    assert len(problems) == 5
    assert excinfo.value.path == str(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"cache": {"ttl_seconds": 0}}, "ttl_seconds"),
        ({"http": {"port": 70000}}, "port"),
        ({"events": {"handler_timeout_seconds": 0}}, "handler_timeout_seconds"),
    ],
    ids=["cache-ttl", "http-port", "handler-timeout"],
)
def test_a_failing_validator_problem_names_the_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(environ={}, **overrides)
    [problem] = excinfo.value.problems
    assert key in problem


@pytest.mark.parametrize(
    "overrides",
    [
        {"plugins": "acme_notes:NotesPlugin"},
        {"database": {"echo": "false"}},
        {"http": {"host": ["127.0.0.1"]}},
    ],
    ids=["string-for-list", "string-for-bool", "list-for-string"],
)
def test_a_value_of_the_wrong_type_is_an_error_not_coerced(overrides: dict[str, Any]) -> None:
    # tuple("acme_notes:NotesPlugin") would load plugins "a", "c", ...; bool("false") is True.
    with pytest.raises(SettingsError):
        load_settings(environ={}, **overrides)


def test_a_required_nested_key_is_reported_with_its_path() -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(environ={"PLEXICA_AUTH__KEYCLOAK": "{}"})
    assert excinfo.value.problems == ["required field missing @ settings.auth.keycloak.url"]


@pytest.mark.parametrize(
    "environ",
    [
        {"PLEXICA_CACHE": "redis", "PLEXICA_CACHE__TTL_SECONDS": "5"},
        {"PLEXICA_CACHE__TTL_SECONDS": "5", "PLEXICA_CACHE": "redis"},
    ],
    ids=["section-first", "key-first"],
)
def test_a_variable_for_a_section_and_one_for_its_key_are_a_settings_error(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ=environ)


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(SettingsError, match="does not exist") as excinfo:
        load_settings(missing, environ={})
    assert excinfo.value.path == str(missing)
    assert str(missing) in str(excinfo.value)


@pytest.mark.parametrize(
    "content",
    ["[http\nport = 1", "port = ", "a = 1\na = 2"],
    ids=["unclosed-table", "missing-value", "duplicate-key"],
)
def test_invalid_toml_is_a_settings_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "plexica.toml", content)
    with pytest.raises(SettingsError, match="cannot read settings file") as excinfo:
        load_settings(path, environ={})
    assert excinfo.value.path == str(path)


def test_a_file_that_is_not_utf8_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "plexica.toml"
    path.write_bytes(b'environment = "\xff"\n')
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(path, environ={})


def test_a_directory_is_not_a_settings_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(tmp_path, environ={})


def test_every_section_has_server_free_defaults() -> None:
    # Each section builds with no arguments; only the optional Keycloak section requires a URL.
    for section in (DatabaseSettings, CacheSettings, StorageSettings, EventSettings, AuthSettings, HttpSettings):
        section()
    with pytest.raises(TypeError):
        KeycloakSettings()  # type: ignore[call-arg]


# ------------------------------------------------------------ the PLEXICA_ namespace


def test_tool_variables_in_the_plexica_namespace_are_not_settings() -> None:
    environ = {"PLEXICA_KEEP_SERVICES": "1", "PLEXICA_REQUIRE_SERVICES": "1", "PLEXICA_CI": "true"}
    assert load_settings(environ=environ) == Settings()


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"PLEXICA_DATABSE__URL": "x"}, "extra fields found (databse) @ settings: did you mean 'database'?"),
        ({"PLEXICA_DATABASE__URLL": "x"}, "extra fields found (urll) @ settings.database: did you mean 'url'?"),
        (
            {"PLEXICA_ENVIROMENT": "production"},
            "extra fields found (enviroment) @ settings: did you mean 'environment'?",
        ),
        (
            {"PLEXICA_HTTP__CORS_ORIGIN": '["a"]'},
            "extra fields found (cors_origin) @ settings.http: did you mean 'cors_origins'?",
        ),
    ],
    ids=["section", "key-in-section", "top-level-key", "cors-key"],
)
def test_a_typo_of_a_real_key_is_reported_with_a_did_you_mean(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(environ=environ)
    assert excinfo.value.problems == [problem]


def test_an_unknown_section_variable_is_reported_even_without_a_close_key() -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(environ={"PLEXICA_NOPE__KEY": "1"})
    assert excinfo.value.problems == ["extra fields found (nope) @ settings"]


def test_a_typo_in_the_settings_file_gets_a_did_you_mean_too(tmp_path: Path) -> None:
    path = write(tmp_path / "plexica.toml", "[http]\ncors_orgins = []\n")
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path, environ={})
    assert excinfo.value.problems == ["extra fields found (cors_orgins) @ settings.http: did you mean 'cors_origins'?"]


def test_the_cli_runs_with_tool_variables_set(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from plexica.cli.main import cli

    environ = {
        "PLEXICA_KEEP_SERVICES": "1",
        "PLEXICA_REQUIRE_SERVICES": "1",
        "PLEXICA_DATA_DIR": str(tmp_path / "data"),
        "PLEXICA_LOAD_ENTRY_POINTS": "false",
        "PLEXICA_SETTINGS": None,
    }
    result = CliRunner().invoke(cli, ["tenants", "list", "--json"], env=environ)

    assert result.exit_code == 0, result.output
    assert "extra fields" not in result.output


# ------------------------------------------------------------------- edge settings


def test_cors_for_any_origin_with_credentials_is_refused() -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(environ={}, http={"cors_origins": ["*"], "cors_credentials": True})
    [problem] = excinfo.value.problems
    assert "cors_origins" in problem


def test_edge_settings_come_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "PLEXICA_HTTP__TENANT_RESOLVERS": '["path", "token"]',
            "PLEXICA_HTTP__CORS_ORIGINS": '["https://app.example.com"]',
            "PLEXICA_HTTP__CORS_TENANT_ORIGINS": '{"acme": ["https://acme.example.org"]}',
            "PLEXICA_AUTH__MODE": "gateway",
            "PLEXICA_AUTH__GATEWAY_KEY": "k",
        }
    )
    assert settings.http.tenant_resolvers == ("path", "token")
    assert settings.http.cors_origins == ("https://app.example.com",)
    assert settings.http.cors_tenant_origins == {"acme": ("https://acme.example.org",)}
    assert (settings.auth.mode, settings.auth.gateway_key) == ("gateway", "k")


def test_an_unknown_tenant_resolver_is_refused() -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(environ={"PLEXICA_HTTP__TENANT_RESOLVERS": '["cookie"]'})
    assert any("tenant_resolvers" in problem for problem in excinfo.value.problems)
