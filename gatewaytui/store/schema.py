"""The schema, as an ordered list of migrations (sqlite-utils ``Migrations``)."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("gatewaytui")


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE tenants (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            tier TEXT,
            subscription_status TEXT,
            subscription_id TEXT,
            period_end REAL,
            stripe_customer_id TEXT,
            per_call_cap_micro INTEGER,
            model_caps TEXT
        );
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            kind TEXT NOT NULL CHECK (kind IN ('payg', 'subscription')),
            prefix TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            label TEXT,
            created_at REAL NOT NULL,
            expires_at REAL,
            revoked_at REAL,
            models TEXT,
            rpm INTEGER
        );
        CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
        CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            label TEXT NOT NULL UNIQUE,
            provider TEXT NOT NULL,
            base_url TEXT NOT NULL DEFAULT '',
            auth TEXT NOT NULL DEFAULT 'api_key',
            secret TEXT,
            oauth TEXT,
            enabled INTEGER NOT NULL DEFAULT 1,
            disabled_reason TEXT,
            priority INTEGER NOT NULL DEFAULT 0,
            weight INTEGER NOT NULL DEFAULT 1,
            models TEXT,
            rpm INTEGER,
            preferred INTEGER NOT NULL DEFAULT 0,
            source TEXT NOT NULL DEFAULT 'db',
            created_at REAL NOT NULL,
            removed_at REAL
        );
        CREATE TABLE account_state (
            account_id TEXT PRIMARY KEY REFERENCES accounts(id),
            cooldown_until REAL,
            cause TEXT,
            since REAL,
            last_error TEXT,
            failures INTEGER NOT NULL DEFAULT 0,
            model_cooldowns TEXT,
            quota TEXT,
            updated_at REAL
        );
        CREATE TABLE requests (
            id TEXT PRIMARY KEY,
            tenant_id INTEGER,
            key_id TEXT,
            route TEXT,
            protocol TEXT,
            model TEXT,
            upstream_model TEXT,
            account_id TEXT,
            stream INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            http_status INTEGER,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost_micro INTEGER NOT NULL DEFAULT 0,
            hold_micro INTEGER NOT NULL DEFAULT 0,
            line_items TEXT,
            price TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            started_at REAL NOT NULL,
            ttft_ms REAL,
            duration_ms REAL,
            day TEXT NOT NULL
        );
        CREATE INDEX requests_tenant_day ON requests(tenant_id, day);
        CREATE INDEX requests_started ON requests(started_at);
        CREATE TABLE ledger (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            kind TEXT NOT NULL CHECK (kind IN ('topup', 'hold', 'settle', 'release', 'refund', 'adjustment')),
            amount_micro INTEGER NOT NULL,
            request_id TEXT,
            idempotency_key TEXT NOT NULL UNIQUE,
            note TEXT,
            origin TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX ledger_tenant ON ledger(tenant_id);
        CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
            BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
        CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
            BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL);
        CREATE TABLE stripe_events (id TEXT PRIMARY KEY, type TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE oauth_flows (
            state TEXT PRIMARY KEY, provider TEXT NOT NULL, label TEXT NOT NULL, verifier TEXT NOT NULL,
            redirect_uri TEXT NOT NULL, created_at REAL NOT NULL, completed_account TEXT, error TEXT
        );
        """
    )


@migrations()
def m002_billing(db: Database) -> None:
    """Stripe top-ups (to reverse refunds), the time of the last subscription event applied, lookups."""
    db.executescript(
        """
        CREATE TABLE stripe_payments (
            payment_intent TEXT PRIMARY KEY,
            tenant_id INTEGER NOT NULL REFERENCES tenants(id),
            session_id TEXT NOT NULL,
            amount_micro INTEGER NOT NULL,
            refunded_micro INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        ALTER TABLE tenants ADD COLUMN stripe_event_at REAL;
        CREATE INDEX tenants_customer ON tenants(stripe_customer_id);
        CREATE INDEX tenants_subscription ON tenants(subscription_id);
        CREATE INDEX requests_tenant_started ON requests(tenant_id, started_at);
        """
    )


@migrations()
def m003_ledger_request_index(db: Database) -> None:
    """Settlement lookups by request (crash recovery, audits) must not scan the whole ledger."""
    db.execute("CREATE INDEX IF NOT EXISTS ledger_request ON ledger(request_id, kind)")


@migrations()
def m004_key_budgets_and_token_rates(db: Database) -> None:
    """Per-key spend budgets (micro-USD per day, month or rolling ``<N>h``), per-key and per-tenant token
    rates (tokens per minute), and the lookup of a key's spend."""
    db.executescript(
        """
        ALTER TABLE api_keys ADD COLUMN budget_micro INTEGER;
        ALTER TABLE api_keys ADD COLUMN budget_period TEXT;
        ALTER TABLE api_keys ADD COLUMN tpm INTEGER;
        ALTER TABLE tenants ADD COLUMN tpm INTEGER;
        CREATE INDEX requests_key_started ON requests(key_id, started_at);
        """
    )


@migrations()
def m005_request_bodies(db: Database) -> None:
    """Request and response bodies, kept only when ``[console] store_bodies`` is on (redacted, capped)."""
    db.executescript(
        """
        CREATE TABLE request_bodies (
            request_id TEXT PRIMARY KEY,
            request TEXT,
            response TEXT,
            request_bytes INTEGER NOT NULL DEFAULT 0,
            response_bytes INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        );
        """
    )


@migrations()
def m006_requested_model(db: Database) -> None:
    """A request served by a fallback model: ``model`` names the model that answered (and was billed),
    ``requested_model`` the one the client asked for (equal when no fallback was needed)."""
    db.execute("ALTER TABLE requests ADD COLUMN requested_model TEXT")
