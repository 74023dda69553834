"""The configuration file: the example parses, every key is honoured, errors name file, line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatewaytui import config

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_parses_and_documents_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-test")
    cfg = config.load(ROOT / "config.example.toml")
    assert cfg.accounts[0].api_key is None  # read when the gateway starts, never by loading
    config.resolve_secrets(cfg)
    assert cfg.billing.max_credit_micro == 10_000 * 1_000_000
    assert cfg.server.host == "127.0.0.1" and cfg.server.port == 8080
    assert cfg.server.admin_token_env == "GATEWAYTUI_ADMIN_TOKEN"
    assert cfg.database.path.endswith("gatewaytui.db")
    anthropic = cfg.accounts[0]
    assert (anthropic.label, anthropic.provider, anthropic.api_key, anthropic.rpm) == (
        "anthropic-1",
        "anthropic",
        "sk-ant-test",
        50,
    )
    model = cfg.models[0]
    assert model.upstream == "claude-sonnet-4-5" and model.aliases == ["auto"]
    assert (model.input_per_mtok, model.output_per_mtok) == (3_000_000, 15_000_000)
    assert (model.cache_read_per_mtok, model.cache_write_per_mtok) == (300_000, 3_750_000)
    assert cfg.tiers[0].tokens_per_day == 2_000_000
    assert cfg.presets["claudecode"].defaults == {"max_tokens": 16000}
    # every dataclass field of every section appears in the example file
    text = (ROOT / "config.example.toml").read_text()
    for section in (
        config.ServerConfig,
        config.DatabaseConfig,
        config.SecurityConfig,
        config.RoutingConfig,
        config.AccountConfig,
        config.ModelConfig,
        config.TierConfig,
        config.StripeConfig,
        config.OAuthProviderConfig,
        config.ConsoleConfig,
        config.BillingConfig,
    ):
        for name in section.__dataclass_fields__:
            assert re.search(rf"^(#\s*or:\s*)?{name}\s*=|#\s*or:\s*{name}\s*=", text, re.M), (
                f"{section.__name__}.{name} is not documented"
            )


def test_console_keymap_is_a_table_of_strings() -> None:
    cfg = config.parse({"console": {"keymap": {"accounts.reset": "z"}}})
    assert cfg.console.keymap == {"accounts.reset": "z"}
    assert config.parse({}).console.keymap == {}
    with pytest.raises(config.ConfigError, match="table of strings"):
        config.parse({"console": {"keymap": {"accounts.reset": 5}}})


def test_model_defaults_upstream_to_name() -> None:
    cfg = config.parse({"models": [{"name": "m", "provider": "anthropic"}]})
    assert cfg.models[0].upstream == "m"


def test_prices_are_exact_micro_usd() -> None:
    cfg = config.parse(
        {"models": [{"name": "m", "provider": "openai", "input_per_mtok": 0.000001, "output_per_mtok": 0.1}]}
    )
    assert cfg.models[0].input_per_mtok == 1 and cfg.models[0].output_per_mtok == 100_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[server]\nport = "x"\n', "x.toml:2: [server] port: expected int"),
        (
            '[[accounts]]\nlabel = "a"\nprovider = "nope"\n',
            "x.toml:3: [[accounts]] #1 provider: unknown provider",
        ),
        (
            '[[models]]\nname = "m"\nprovider = "openai"\ninput_per_mtok = -1\n',
            "x.toml:4: [[models]] #1 input_per_mtok",
        ),
        ("[server]\nbogus = 1\n", "x.toml:2: [server] bogus: unknown key"),
        ("[server\n", "x.toml: invalid TOML"),
        ("[billing]\nmax_credit_usd = 0\n", "x.toml:2: [billing] max_credit_usd: must be a positive amount"),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert str(info.value).replace(str(tmp_path) + "/", "").startswith(expected), str(info.value)


def test_secret_by_env_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-from-env")
    cfg = config.parse({"accounts": [{"label": "a", "provider": "openai", "api_key_env": "MY_KEY"}]})
    assert cfg.accounts[0].api_key is None
    config.resolve_secrets(cfg)
    assert cfg.accounts[0].api_key == "sk-from-env"


def test_unset_secrets_are_reported_when_resolved_all_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading never needs an upstream secret (the admin commands load the file too); the gateway's start
    resolves them and names every variable that is missing, with its file and line."""
    monkeypatch.delenv("GATEWAYTUI_TEST_UNSET_A", raising=False)
    monkeypatch.delenv("GATEWAYTUI_TEST_UNSET_B", raising=False)
    path = tmp_path / "x.toml"
    path.write_text(
        '[[accounts]]\nlabel = "a"\nprovider = "openai"\napi_key_env = "GATEWAYTUI_TEST_UNSET_A"\n'
        '[[accounts]]\nlabel = "b"\nprovider = "openai"\napi_key_env = "GATEWAYTUI_TEST_UNSET_B"\n'
    )
    cfg = config.load(path)
    with pytest.raises(config.ConfigError) as info:
        config.resolve_secrets(cfg)
    assert [m.replace(str(tmp_path) + "/", "") for m in info.value.messages] == [
        "x.toml:4: [[accounts]] #1 api_key_env: environment variable GATEWAYTUI_TEST_UNSET_A is not set",
        "x.toml:8: [[accounts]] #2 api_key_env: environment variable GATEWAYTUI_TEST_UNSET_B is not set",
    ]
    with pytest.raises(config.ConfigError, match="api_key or api_key_env, not both"):
        config.parse({"accounts": [{"label": "a", "provider": "openai", "api_key": "k", "api_key_env": "X"}]})


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text(
        "surprise = 1\n"  # 1
        "[server]\n"  # 2
        'port = "x"\n'  # 3
        "bogus = 1\n"  # 4
        "[routing]\n"  # 5
        'strategy = "random"\n'  # 6
        "[[accounts]]\n"  # 7
        'label = "a"\n'  # 8
        'provider = "nope"\n'  # 9
        "[[models]]\n"  # 10
        'name = "m"\n'  # 11
        'provider = "openai"\n'  # 12
        "input_per_mtok = -1\n"  # 13
        "output_per_mtok = -2\n"  # 14
    )
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    found = [m.replace(str(tmp_path) + "/", "") for m in info.value.messages]
    expected = [
        "x.toml:1: surprise: unknown top-level key",
        "x.toml:3: [server] port: expected int",
        "x.toml:4: [server] bogus: unknown key",
        "x.toml:6: [routing] strategy: must be one of",
        "x.toml:9: [[accounts]] #1 provider: unknown provider 'nope'",
        "x.toml:13: [[models]] #1 input_per_mtok: must be >= 0",
        "x.toml:14: [[models]] #1 output_per_mtok: must be >= 0",
    ]
    assert len(found) == len(expected), found
    for line, prefix in zip(found, expected, strict=True):
        assert line.startswith(prefix), (line, prefix)


def test_database_url_selects_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.parse({"database": {"url": "postgresql://gw@db:5432/gatewaytui"}})
    assert cfg.database.shared and cfg.database.target == "postgresql://gw@db:5432/gatewaytui"
    assert not config.parse({}).database.shared and config.parse({}).database.target == "gatewaytui.db"
    monkeypatch.setenv("GW_DSN", "postgresql://gw:secret@db/gatewaytui")
    assert config.parse({"database": {"url_env": "GW_DSN"}}).database.target.endswith("secret@db/gatewaytui")
    for section, message in [
        ({"url": "mysql://db/x"}, "must be a postgresql:// URL"),
        ({"url_env": "GW_UNSET_DSN"}, "environment variable GW_UNSET_DSN is not set"),
        ({"url": "postgresql://a/b", "url_env": "GW_DSN"}, "give url or url_env, not both"),
        ({"lease_seconds": 0.5}, "between 1 and 600"),
    ]:
        with pytest.raises(config.ConfigError, match=message):
            config.parse({"database": section})


def test_a_retired_key_warns_instead_of_refusing_the_config(caplog: pytest.LogCaptureFixture) -> None:
    """Configs written for an earlier release still start: ``[server] upstream_transport`` chose between
    upstream clients that no longer exist."""
    with caplog.at_level("WARNING", logger="gatewaytui"):
        cfg = config.parse({"server": {"port": 9000, "upstream_transport": "lean"}})
    assert cfg.server.port == 9000
    assert "upstream_transport is retired" in caplog.text
    with pytest.raises(config.ConfigError, match="unknown key 'upstream_transprot'"):
        config.parse({"server": {"upstream_transprot": "lean"}})
