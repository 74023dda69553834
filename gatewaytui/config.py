"""Configuration: one TOML file, typed, validated, with errors that name the file, line and key.

Secrets are given inline (``api_key``) or by environment-variable name (``api_key_env``); the example
file ``config.example.toml`` documents every key and is parsed by the test suite.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

PROVIDERS = ("anthropic", "openai", "gemini", "openrouter", "openai-compatible")
STRATEGIES = ("round-robin", "least-used", "sticky")
ROUTES = ("claudecode", "cline", "cursor", "roocode")


class ConfigError(Exception):
    """Configuration problems, each located as precisely as possible (file:line: table key: what)."""

    def __init__(self, *messages: str) -> None:
        self.messages = [m for m in messages if m]
        super().__init__("\n".join(self.messages))


class _Errors:
    """Collects every problem of a file, so one run reports all of them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def attempt(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """``fn(*args, **kw)``, or ``None`` with its problems noted."""
        try:
            return fn(*args, **kw)
        except ConfigError as exc:
            self.messages.extend(exc.messages)
            return None

    def note(self, err: ConfigError) -> None:
        self.messages.extend(err.messages)

    def raise_any(self) -> None:
        if self.messages:
            raise ConfigError(*self.messages)


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token_env: str = "GATEWAYTUI_ADMIN_TOKEN"
    max_body_mb: float = 32.0
    stream_idle_timeout: float = 300.0  # seconds without an upstream byte before a stream is failed
    first_byte_timeout: float = 120.0  # seconds to wait for an upstream's response headers
    failover_deadline: float = 90.0  # total seconds spent trying accounts before giving up
    keepalive_interval: float = 10.0  # SSE keep-alive while waiting for the first token
    graceful_timeout: float = 30.0  # seconds in-flight streams get to finish on shutdown
    upstream_max_body_mb: float = 64.0  # largest non-streamed upstream answer (decoded) the relay reads
    public_url: str = ""  # base URL clients use (Stripe redirects, printed hints)

    @property
    def admin_token(self) -> str | None:
        return os.environ.get(self.admin_token_env) or None


@dataclass(slots=True)
class DatabaseConfig:
    path: str = "gatewaytui.db"
    flush_interval_ms: int = 50  # usage/ledger writes are batched on this period
    url: str = ""  # postgresql://user@host:port/db: a PostgreSQL store shared by any number of instances
    url_env: str = ""  # or the name of an environment variable holding that URL (one with a password)
    lease_seconds: float = 30.0  # PostgreSQL: a dead instance's credit holds are released after this lease
    spool_dir: str = (
        ""  # PostgreSQL: settlements kept on disk while the store is down; "" = the user's data dir
    )

    @property
    def target(self) -> str:
        """What the store opens: the PostgreSQL URL when one is configured, else the SQLite file."""
        return self.url or self.path

    @property
    def shared(self) -> bool:
        return bool(self.url)


@dataclass(slots=True)
class SecurityConfig:
    secret_key_env: str = "GATEWAYTUI_SECRET_KEY"
    secret_key_file: str = ""  # default: <database path>.key, created 0600


@dataclass(slots=True)
class AccountConfig:
    label: str
    provider: str
    base_url: str = ""
    api_key: str | None = None
    api_key_env: str | None = None  # read by ``resolve_secrets`` when the gateway starts, not at load
    rpm: int | None = None
    priority: int = 0  # higher first
    weight: int = 1
    models: list[str] = field(default_factory=list)  # empty: every model of the provider
    enabled: bool = True
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ModelConfig:
    """A model clients may ask for. Prices are integer micro-USD per million tokens."""

    name: str
    provider: str
    upstream: str = ""
    aliases: list[str] = field(default_factory=list)
    input_per_mtok: int = 0
    output_per_mtok: int = 0
    cache_read_per_mtok: int = 0
    cache_write_per_mtok: int = 0
    cache_write_1h_per_mtok: int = 0
    max_tokens: int = 8192  # default/ceiling output tokens; sizes the worst-case hold
    # server tools (web search, web fetch, code execution): fees in micro-USD per use, and the hold's bound
    web_search_per_use: int = 10_000  # Anthropic's public price: $10 per 1,000 searches
    web_fetch_per_use: int = 0
    code_execution_per_use: int = 0
    server_tool_max_uses: int = 5  # uses held per server tool that sets no max_uses; 0 refuses server tools
    server_tool_input_tokens: int = 20_000  # input tokens held per use (results the upstream adds)
    context_window: int = 200_000
    api: str = ""  # "responses" to reach an OpenAI model through the Responses API
    display_name: str = ""

    def __post_init__(self) -> None:
        self.upstream = self.upstream or self.name


@dataclass(slots=True)
class RoutingConfig:
    strategy: str = "sticky"
    default_model: str = ""
    haiku_model: str = ""  # claude-haiku-* requests go here when set (the "haiku lane")
    max_attempts: int = 4


@dataclass(slots=True)
class LimitsConfig:
    tenant_tpm_default: int = 0  # tokens per minute of a tenant with no limit of its own (0: none)


@dataclass(slots=True)
class FallbackConfig:
    """When no account can serve ``model``, the request is served by the first of ``then`` that can."""

    model: str
    then: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TierConfig:
    name: str
    monthly_usd: float = 0.0
    tokens_per_day: int = 0
    routes: list[str] = field(default_factory=lambda: list(ROUTES))
    models: list[str] = field(default_factory=list)  # empty: all models
    stripe_price_id: str = ""


@dataclass(slots=True)
class PresetConfig:
    system: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StripeConfig:
    secret_key_env: str = "STRIPE_SECRET_KEY"
    webhook_secret_env: str = "STRIPE_WEBHOOK_SECRET"
    api_base: str = ""  # override for tests / stripe-mock
    success_url: str = "http://localhost:8080/billing/success"
    cancel_url: str = "http://localhost:8080/billing/cancel"
    currency: str = "usd"

    @property
    def secret_key(self) -> str:
        return os.environ.get(self.secret_key_env, "")

    @property
    def webhook_secret(self) -> str:
        return os.environ.get(self.webhook_secret_env, "")


@dataclass(slots=True)
class OAuthProviderConfig:
    authorize_url: str
    token_url: str
    client_id: str
    scopes: list[str] = field(default_factory=list)
    redirect_port: int = 1455
    redirect_path: str = "/auth/callback"
    extra_params: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ConsoleConfig:
    theme: str = "textual-dark"
    refresh_ms: int = 500
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> keys (see the console's help)
    store_bodies: bool = False  # keep request/response bodies (redacted, capped) for the request detail
    body_limit_kb: int = 64  # the most kept of each body


@dataclass(slots=True)
class MetricsConfig:
    """``GET /metrics`` (Prometheus): behind the admin token, or a scrape token of its own."""

    enabled: bool = True
    token_env: str = ""  # env var holding a scrape-only bearer token; empty: the admin token
    tenant_labels: bool = False  # label request counters by tenant (one series per tenant)


@dataclass(slots=True)
class LogConfig:
    format: str = "plain"  # "plain" (human) or "json" (one object per line); --log-format overrides
    file: str = ""  # headless log destination; empty: stderr
    requests: bool = True  # headless: one line per finished request


@dataclass(slots=True)
class OtelConfig:
    """OpenTelemetry traces (the ``otel`` extra): off unless an endpoint is set."""

    endpoint: str = ""  # OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces
    service_name: str = "gatewaytui"


@dataclass(slots=True)
class BillingConfig:
    """Bounds on what an operator may hand out in one action (typos like an extra six zeros are refused)."""

    max_credit_usd: float = 10_000.0  # the largest single credit or adjustment, in USD

    @property
    def max_credit_micro(self) -> int:
        return int(round(self.max_credit_usd * 1_000_000))


LOG_FORMATS = ("plain", "json")


@dataclass(slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    accounts: list[AccountConfig] = field(default_factory=list)
    models: list[ModelConfig] = field(default_factory=list)
    tiers: list[TierConfig] = field(default_factory=list)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    fallbacks: list[FallbackConfig] = field(default_factory=list)
    presets: dict[str, PresetConfig] = field(default_factory=dict)
    stripe: StripeConfig = field(default_factory=StripeConfig)
    oauth: dict[str, OAuthProviderConfig] = field(default_factory=dict)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    otel: OtelConfig = field(default_factory=OtelConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    claude_home: str = "~/.claude"  # where Claude Code's settings.json lives
    path: str | None = None  # the file this came from
    demo: bool = False
    source: _Source | None = None  # the file's text, to locate problems found after loading


# ------------------------------------------------------------------ loading


def default_path() -> Path:
    return Path(os.environ.get("GATEWAYTUI_CONFIG") or "gatewaytui.toml")


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    cfg = parse(data, source=_Source(str(p), text))
    cfg.path = str(p)
    base = p.parent
    if not Path(cfg.database.path).is_absolute():
        cfg.database.path = str(base / cfg.database.path)
    if cfg.database.spool_dir and not Path(cfg.database.spool_dir).expanduser().is_absolute():
        cfg.database.spool_dir = str(base / cfg.database.spool_dir)
    return cfg


class _Source:
    """Locates keys in the TOML text so errors can name a line."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.lines = text.splitlines()

    def where(self, table: str, key: str | None, index: int | None = None) -> str:
        header_re = re.compile(r"^\s*\[\[?\s*" + re.escape(table) + r"\s*\]\]?\s*(#.*)?$") if table else None
        start = 0
        if header_re is not None:
            seen = -1
            for i, line in enumerate(self.lines):
                if header_re.match(line):
                    seen += 1
                    if index is None or seen == index:
                        start = i
                        break
            else:
                return f"{self.name}: [{table}]"
        line_no = start
        if key:
            key_re = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
            for i in range(start + (1 if table else 0), len(self.lines)):
                if i > start and table and self.lines[i].lstrip().startswith("["):
                    break
                if key_re.match(self.lines[i]):
                    line_no = i
                    break
        label = f"[{table}]" if table else ""
        if index is not None:
            label = f"[[{table}]] #{index + 1}"
        dotted = f"{label} {key}" if key else label
        return f"{self.name}:{line_no + 1}: {dotted.strip()}"


def _database_url(db: DatabaseConfig, fail: Any) -> None:
    """Resolve ``url_env`` into ``url`` and check the URL names PostgreSQL."""
    if db.url_env:
        if db.url:
            raise fail("database", "url_env", "give url or url_env, not both")
        value = os.environ.get(db.url_env, "").strip()
        if not value:
            raise fail("database", "url_env", f"environment variable {db.url_env} is not set")
        db.url = value
    if not 1.0 <= db.lease_seconds <= 600:
        raise fail("database", "lease_seconds", "must be between 1 and 600 seconds")
    if db.url and not db.url.startswith(("postgresql://", "postgres://")):
        raise fail("database", "url", "must be a postgresql:// URL (for SQLite, set path instead)")


KNOWN_TOP = frozenset(
    {
        "server",
        "database",
        "security",
        "routing",
        "accounts",
        "models",
        "tiers",
        "limits",
        "fallbacks",
        "presets",
        "stripe",
        "oauth",
        "console",
        "metrics",
        "log",
        "otel",
        "billing",
        "claude_home",
    }
)
_SECTIONS = (
    ("server", "server", ServerConfig),
    ("database", "database", DatabaseConfig),
    ("security", "security", SecurityConfig),
    ("routing", "routing", RoutingConfig),
    ("stripe", "stripe", StripeConfig),
    ("console", "console", ConsoleConfig),
    ("metrics", "metrics", MetricsConfig),
    ("log", "log", LogConfig),
    ("otel", "otel", OtelConfig),
    ("limits", "limits", LimitsConfig),
)


def parse(data: dict[str, Any], source: _Source | None = None) -> Config:
    """The typed config; every problem in ``data`` is reported at once (one ``ConfigError``, many lines)."""
    src = source or _Source("<config>", "")
    errors = _Errors()

    def fail(table: str, key: str | None, msg: str, index: int | None = None) -> ConfigError:
        return ConfigError(f"{src.where(table, key, index)}: {msg}")

    for key in data:
        if key not in KNOWN_TOP:
            errors.note(fail("", key, f"unknown top-level key {key!r}"))
    cfg = Config(source=src)
    for attr, table, cls in _SECTIONS:
        section = errors.attempt(_table, cls, data.get(table, {}), table, fail)
        if section is not None:
            setattr(cfg, attr, section)
    errors.attempt(_database_url, cfg.database, fail)
    billing = errors.attempt(_table, BillingConfig, data.get("billing", {}), "billing", fail)
    if billing is not None:
        cfg.billing = billing
    if cfg.log.format not in LOG_FORMATS:
        errors.note(fail("log", "format", f"must be one of {', '.join(LOG_FORMATS)}"))
    if "claude_home" in data:
        home = errors.attempt(_check, str, data["claude_home"], "", "claude_home", fail)
        cfg.claude_home = home if home is not None else cfg.claude_home
    if cfg.console.body_limit_kb < 1:
        errors.note(fail("console", "body_limit_kb", "body_limit_kb must be at least 1"))
    if cfg.routing.strategy not in STRATEGIES:
        errors.note(fail("routing", "strategy", f"must be one of {', '.join(STRATEGIES)}"))
    if not (0 <= cfg.server.port < 65536):
        errors.note(fail("server", "port", "must be between 0 (any free port) and 65535"))
    if not cfg.server.upstream_max_body_mb > 0:
        errors.note(fail("server", "upstream_max_body_mb", "must be a positive number of megabytes"))
    if cfg.limits.tenant_tpm_default < 0:
        errors.note(fail("limits", "tenant_tpm_default", "must be >= 0 (0: no limit)"))
    if not cfg.billing.max_credit_usd > 0:
        errors.note(fail("billing", "max_credit_usd", "must be a positive amount of USD"))

    for i, raw in enumerate(errors.attempt(_array, data.get("accounts", []), "accounts", fail) or []):
        acc = errors.attempt(_account, raw, i, fail)
        if acc is not None:
            cfg.accounts.append(acc)
    labels = [a.label for a in cfg.accounts]
    for i, label in enumerate(labels):
        if labels.index(label) != i:
            errors.note(fail("accounts", "label", f"duplicate account label {label!r}", i))

    seen: set[str] = set()
    for i, raw in enumerate(errors.attempt(_array, data.get("models", []), "models", fail) or []):
        model = errors.attempt(_model, raw, i, fail)
        if model is None:
            continue
        for name in [model.name, *model.aliases]:
            if name in seen:
                which = "aliases" if name != model.name else "name"
                errors.note(fail("models", which, f"model name or alias {name!r} is defined twice", i))
            seen.add(name)
        cfg.models.append(model)

    for i, raw in enumerate(errors.attempt(_array, data.get("fallbacks", []), "fallbacks", fail) or []):
        fallback = errors.attempt(_table, FallbackConfig, raw, "fallbacks", fail, i)
        if fallback is None:
            continue
        problem = fallback_problem(fallback.model, fallback.then, seen)
        if problem:
            errors.note(fail("fallbacks", problem[0], problem[1], i))
        elif any(f.model == fallback.model for f in cfg.fallbacks):
            errors.note(fail("fallbacks", "model", f"fallbacks for {fallback.model!r} are given twice", i))
        else:
            cfg.fallbacks.append(fallback)

    for i, raw in enumerate(errors.attempt(_array, data.get("tiers", []), "tiers", fail) or []):
        tier = errors.attempt(_table, TierConfig, raw, "tiers", fail, i)
        if tier is None:
            continue
        for route in tier.routes:
            if route not in ROUTES:
                errors.note(
                    fail("tiers", "routes", f"unknown route {route!r}; one of {', '.join(ROUTES)}", i)
                )
        cfg.tiers.append(tier)
    presets = data.get("presets", {})
    if not isinstance(presets, dict):
        errors.note(fail("presets", None, "must be a table"))
        presets = {}
    for name, raw in presets.items():
        if name not in ROUTES:
            errors.note(fail(f"presets.{name}", None, f"unknown preset {name!r}; one of {', '.join(ROUTES)}"))
            continue
        preset = errors.attempt(_table, PresetConfig, raw, f"presets.{name}", fail)
        if preset is not None:
            cfg.presets[name] = preset
    oauth = data.get("oauth", {})
    if not isinstance(oauth, dict):
        errors.note(fail("oauth", None, "must be a table"))
        oauth = {}
    for name, raw in oauth.items():
        if name not in PROVIDERS:
            errors.note(fail(f"oauth.{name}", None, f"unknown provider {name!r}"))
            continue
        provider = errors.attempt(_table, OAuthProviderConfig, raw, f"oauth.{name}", fail)
        if provider is not None:
            cfg.oauth[name] = provider
    errors.raise_any()
    return cfg


def _account(raw: dict[str, Any], i: int, fail: Any) -> AccountConfig:
    raw = dict(raw)
    if raw.get("api_key_env") is not None and "api_key" in raw:
        raise fail("accounts", "api_key_env", "give api_key or api_key_env, not both", i)
    acc: AccountConfig = _table(AccountConfig, raw, "accounts", fail, i)
    if acc.provider not in PROVIDERS:
        raise fail(
            "accounts", "provider", f"unknown provider {acc.provider!r}; one of {', '.join(PROVIDERS)}", i
        )
    if acc.provider == "openai-compatible" and not acc.base_url:
        raise fail("accounts", "base_url", "required for openai-compatible accounts", i)
    return acc


def _model(raw: dict[str, Any], i: int, fail: Any) -> ModelConfig:
    raw = dict(raw)
    problems = _Errors()
    for key in (
        "input_per_mtok",
        "output_per_mtok",
        "cache_read_per_mtok",
        "cache_write_per_mtok",
        "cache_write_1h_per_mtok",
        "web_search_per_use",
        "web_fetch_per_use",
        "code_execution_per_use",
    ):
        if key in raw:
            raw[key] = problems.attempt(_micro, raw[key], lambda msg, k=key: fail("models", k, msg, i))
    problems.raise_any()
    if "cache_write_1h_per_mtok" not in raw and "input_per_mtok" in raw:
        raw["cache_write_1h_per_mtok"] = raw["input_per_mtok"] * 2  # Anthropic's 1-hour write price
    model: ModelConfig = _table(ModelConfig, raw, "models", fail, i)
    for key in ("server_tool_max_uses", "server_tool_input_tokens"):
        if getattr(model, key) < 0:
            raise fail("models", key, "must be >= 0", i)
    if model.provider not in PROVIDERS:
        raise fail(
            "models", "provider", f"unknown provider {model.provider!r}; one of {', '.join(PROVIDERS)}", i
        )
    return model


def resolve_secrets(cfg: Config) -> None:
    """Read the accounts' ``api_key_env`` variables: only what starts the gateway needs upstream secrets
    (the admin commands never do). Every variable that is unset is reported at once."""
    src = cfg.source or _Source("<config>", "")
    missing = []
    for i, acc in enumerate(cfg.accounts):
        if acc.api_key_env and not acc.api_key:
            value = os.environ.get(acc.api_key_env)
            if value:
                acc.api_key = value
            else:
                where = src.where("accounts", "api_key_env", i)
                missing.append(f"{where}: environment variable {acc.api_key_env} is not set")
    if missing:
        raise ConfigError(*missing)


MAX_FALLBACKS = 8  # models in one chain


def fallback_problem(model: str, then: list[str], names: set[str]) -> tuple[str, str] | None:
    """What is wrong with a fallback chain (``(key, message)``), or None; ``names``: every model name and
    alias the gateway knows."""
    if model not in names:
        return "model", f"no model {model!r} is configured"
    if not then:
        return "then", "must name at least one model"
    if len(then) > MAX_FALLBACKS:
        return "then", f"at most {MAX_FALLBACKS} models"
    for name in then:
        if name not in names:
            return "then", f"no model {name!r} is configured"
    if len(set(then)) != len(then) or model in then:
        return "then", "a model may appear once in a chain, and not as its own fallback"
    return None


def _micro(value: Any, fail: Any) -> int:
    """USD (per million tokens, or per use) as a TOML float or int -> integer micro-USD, exactly."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail("must be a number of USD")
    try:
        micro = Decimal(str(value)) * 1_000_000
    except InvalidOperation:
        raise fail("must be a number") from None
    if micro < 0 or micro != micro.to_integral_value():
        raise fail("must be >= 0 with at most 6 decimal places")
    return int(micro)


def _array(value: Any, table: str, fail: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise fail(table, None, f"must be an array of tables ([[{table}]])")
    return value


def _check(typ: Any, value: Any, table: str, key: str, fail: Any, index: int | None = None) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise fail(table, key, f"expected {typ.__name__}, got {type(value).__name__}", index)
    return value


# keys earlier releases accepted that no longer do anything: ignored with a warning, so an upgrade
# never refuses a config that used to start ("table.key" -> what to do instead)
RETIRED = {
    "server.upstream_transport": "the relay has one upstream client (aiohttp) now; remove the key",
}


def _table(cls: Any, raw: Any, table: str, fail: Any, index: int | None = None) -> Any:
    import dataclasses
    import typing

    if not isinstance(raw, dict):
        raise fail(table, None, "must be a table", index)
    hints = typing.get_type_hints(cls)
    names = set(cls.__dataclass_fields__)
    kwargs: dict[str, Any] = {}
    problems = _Errors()
    for key, value in raw.items():
        if key not in names and f"{table}.{key}" in RETIRED:
            logging.getLogger("gatewaytui").warning(
                "config: [%s] %s is retired and ignored: %s", table, key, RETIRED[f"{table}.{key}"]
            )
            continue
        if key not in names:
            problems.note(fail(table, key, f"unknown key {key!r} (known: {', '.join(sorted(names))})", index))
            continue
        checked = problems.attempt(_value, hints[key], value, table, key, fail, index)
        if checked is not None or value is None:
            kwargs[key] = checked
    missing = [
        n
        for n, f in cls.__dataclass_fields__.items()
        if f.default is f.default_factory is dataclasses.MISSING and n not in raw
    ]
    for name in missing:
        problems.note(fail(table, None, f"missing required key {name!r}", index))
    problems.raise_any()
    return cls(**kwargs)


def _value(hint: Any, value: Any, table: str, key: str, fail: Any, index: int | None) -> Any:
    import typing

    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise fail(table, key, "expected an array", index)
        (inner,) = typing.get_args(hint)
        return [_check(inner, v, table, key, fail, index) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail(table, key, "expected a table", index)
        if typing.get_args(hint) == (str, str) and not all(isinstance(v, str) for v in value.values()):
            raise fail(table, key, "expected a table of strings", index)
        return value
    if hint in (int, float, str, bool):
        return _check(hint, value, table, key, fail, index)
    if hint == (str | None) or hint == (int | None):
        if value is not None:
            return _check(str if hint == (str | None) else int, value, table, key, fail, index)
    return value
