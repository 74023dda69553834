"""The schema, as one ordered list of migrations for both stores (sqlite-utils ``Migrations``).

SQLite applies them through sqlite-utils (recorded in ``_sqlite_migrations``, so existing databases keep
upgrading); PostgreSQL applies the same list (recorded in ``_migrations``), each migration's DDL rewritten
by ``pg.ddl``. A migration therefore speaks SQL through ``db.execute`` / ``db.executescript`` only, and
branches on ``dialect(db)`` for what exists in one store alone (PostgreSQL's shared admission and change
notifications). The list is append-only: never edit an applied migration, add the next one.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS_TABLE_PG = "_migrations"


def dialect(db: Any) -> str:
    """``"sqlite"`` or ``"postgresql"``: the store a migration is being applied to."""
    return str(getattr(db, "dialect", "sqlite"))


class _PgSchemaDb:
    """What a migration sees of a PostgreSQL store: ``execute`` and ``executescript`` of SQLite DDL."""

    dialect = "postgresql"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = None) -> Any:
        from .pg import ddl

        return self.conn.raw.execute(ddl(sql).encode(), params)

    def executescript(self, script: str) -> None:
        from .pg import ddl

        self.conn.raw.execute(ddl(script).encode())


class Schema(Migrations):
    def apply_postgresql(self, conn: Any) -> None:
        """Apply pending migrations to a PostgreSQL store (a ``PgConnection``), all in one transaction under
        an advisory lock, so instances starting together migrate once."""
        raw = conn.raw
        with raw.transaction():
            raw.execute("SELECT pg_advisory_xact_lock(hashtext('gatewaytui-migrations'))")
            raw.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE_PG} (migration_set TEXT NOT NULL,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                " PRIMARY KEY (migration_set, name))"
            )
            done = {
                r[0]
                for r in raw.execute(
                    f"SELECT name FROM {MIGRATIONS_TABLE_PG} WHERE migration_set = %s", (self.name,)
                )
            }
            db = _PgSchemaDb(conn)
            for migration in self._migrations:
                if migration.name in done:
                    continue
                migration.fn(db)  # type: ignore[arg-type]
                raw.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE_PG} (migration_set, name) VALUES (%s, %s)",
                    (self.name, migration.name),
                )


migrations = Schema("gatewaytui")


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
def m006_shared_store(db: Database) -> None:
    """PostgreSQL only: what several gateway processes share.

    ``credit`` holds each tenant's balance (kept equal to its ledger sum by a trigger; never written
    otherwise) and the credit held by requests in flight on any instance; admission is one conditional
    UPDATE of that row (``billing/shared_wallet.py``). ``credit_holds`` names each hold's owner instance;
    ``instances`` are the live gateway processes, each with a lease it renews: when a lease runs out, the
    survivors release that instance's holds. A settle or release entry in the ledger drops its hold in the
    same transaction, so a hold ends exactly once. ``key_rates`` counts each instance's requests per key
    and second (``billing/shared_rate.py``). Changes that other instances must see at once raise a
    notification on channel ``gatewaytui``, its payload the table's name.
    """
    if dialect(db) != "postgresql":
        return
    db.executescript(
        """
        CREATE TABLE credit (
            tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
            balance INTEGER NOT NULL DEFAULT 0,
            held INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO credit (tenant_id, balance) SELECT tenant_id, SUM(amount_micro) FROM ledger GROUP BY tenant_id;
        CREATE TABLE credit_holds (
            request_id TEXT PRIMARY KEY,
            tenant_id INTEGER NOT NULL,
            amount INTEGER NOT NULL,
            owner TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX credit_holds_owner ON credit_holds(owner);
        CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            url TEXT,
            started_at REAL NOT NULL,
            lease_until REAL NOT NULL
        );
        CREATE TABLE key_rates (
            instance TEXT NOT NULL,
            key_id TEXT NOT NULL,
            second BIGINT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (instance, key_id, second)
        );
        CREATE FUNCTION ledger_credit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE released BIGINT;
        BEGIN
            INSERT INTO credit (tenant_id, balance) VALUES (NEW.tenant_id, NEW.amount_micro)
                ON CONFLICT (tenant_id) DO UPDATE SET balance = credit.balance + EXCLUDED.balance;
            IF NEW.kind IN ('settle', 'release') AND NEW.request_id IS NOT NULL THEN
                DELETE FROM credit_holds WHERE request_id = NEW.request_id RETURNING amount INTO released;
                IF FOUND THEN
                    UPDATE credit SET held = held - released WHERE tenant_id = NEW.tenant_id;
                END IF;
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER ledger_credit AFTER INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_credit_fn();
        CREATE FUNCTION gatewaytui_notify_fn() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('gatewaytui', TG_TABLE_NAME);
            RETURN NULL;
        END $$;
        """
    )
    for table in NOTIFYING_TABLES:
        db.execute(
            f"CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION gatewaytui_notify_fn()"
        )


# tables whose changes every instance must see within a second (see runtime's watcher)
NOTIFYING_TABLES = ("api_keys", "tenants", "accounts", "account_state", "settings", "ledger", "requests")


@migrations()
def m007_requested_model(db: Database) -> None:
    """A request served by a fallback model: ``model`` names the model that answered (and was billed),
    ``requested_model`` the one the client asked for (equal when no fallback was needed)."""
    db.execute("ALTER TABLE requests ADD COLUMN requested_model TEXT")


@migrations()
def m008_instance_live_state(db: Database) -> None:
    """PostgreSQL only: each instance publishes a compact summary of its live state with its lease renewal
    (``live``: JSON text, its in-flight count and a bounded list of in-flight streams, no secrets and no
    prompts; ``renewed_at``: the database's clock at the last renewal), so the console of any instance shows
    the whole cluster (``ops/snapshot.py``)."""
    if dialect(db) != "postgresql":
        return
    db.execute("ALTER TABLE instances ADD COLUMN live TEXT")
    db.execute("ALTER TABLE instances ADD COLUMN renewed_at REAL")


@migrations()
def m009_shared_key_limits(db: Database) -> None:
    """PostgreSQL only: key budgets and token rates held across every instance (``store/key_limits.py``).

    ``key_spend`` is each key's settled spend per hour (a trigger on ``requests`` keeps it, exactly once per
    request row: an upsert adds the difference), seeded here from the request rows; a budget period sums
    its hours. ``key_budget`` is the row admission locks per key, with the budget held by requests in flight
    on any instance; each such hold is a column of the request's credit hold (``key_amount``), so it has the
    credit hold's owner and lease and ends with it, exactly once (settlement's ledger entry, or the sweep of
    a dead instance's holds). ``token_rates`` counts per scope and second of the database's clock: tokens
    (``key:<id>``, ``tenant:<id>``; admission adds the worst case, settlement corrects it) and requests
    (``rpm:<key id>``), which replaces the per-instance counts of ``key_rates`` (dropped).
    ``gatewaytui_admit`` is the whole admission of a key with a budget, a token rate or an RPM limit in one
    statement:
    the tenant's credit row, the key's budget row and the scopes' advisory locks, taken in that order, then
    each check on fresh reads, then every write."""
    if dialect(db) != "postgresql":
        return
    db.executescript(
        """
        ALTER TABLE credit_holds ADD COLUMN key_id TEXT;
        ALTER TABLE credit_holds ADD COLUMN key_amount BIGINT NOT NULL DEFAULT 0;
        CREATE TABLE key_budget (key_id TEXT PRIMARY KEY, held BIGINT NOT NULL DEFAULT 0);
        CREATE TABLE key_spend (
            key_id TEXT NOT NULL, hour BIGINT NOT NULL, spent BIGINT NOT NULL, PRIMARY KEY (key_id, hour)
        );
        INSERT INTO key_spend (key_id, hour, spent)
            SELECT key_id, FLOOR(started_at / 3600)::BIGINT, SUM(cost_micro) FROM requests
            WHERE cost_micro <> 0 GROUP BY 1, 2;
        DROP TABLE key_rates;
        CREATE TABLE token_rates (
            scope TEXT NOT NULL, second BIGINT NOT NULL, tokens BIGINT NOT NULL, PRIMARY KEY (scope, second)
        );
        CREATE FUNCTION requests_spend_fn() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE delta BIGINT := NEW.cost_micro;
        BEGIN
            IF TG_OP = 'UPDATE' THEN
                delta := NEW.cost_micro - OLD.cost_micro;
            END IF;
            IF delta <> 0 THEN
                INSERT INTO key_spend (key_id, hour, spent) VALUES (NEW.key_id, FLOOR(NEW.started_at / 3600), delta)
                    ON CONFLICT (key_id, hour) DO UPDATE SET spent = key_spend.spent + EXCLUDED.spent;
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER requests_spend AFTER INSERT OR UPDATE OF cost_micro ON requests
            FOR EACH ROW EXECUTE FUNCTION requests_spend_fn();
        CREATE OR REPLACE FUNCTION ledger_credit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE released BIGINT; held_key TEXT; key_released BIGINT;
        BEGIN
            INSERT INTO credit (tenant_id, balance) VALUES (NEW.tenant_id, NEW.amount_micro)
                ON CONFLICT (tenant_id) DO UPDATE SET balance = credit.balance + EXCLUDED.balance;
            IF NEW.kind IN ('settle', 'release') AND NEW.request_id IS NOT NULL THEN
                DELETE FROM credit_holds WHERE request_id = NEW.request_id
                    RETURNING amount, key_id, key_amount INTO released, held_key, key_released;
                IF FOUND THEN
                    UPDATE credit SET held = held - released WHERE tenant_id = NEW.tenant_id;
                    IF key_released <> 0 THEN
                        UPDATE key_budget SET held = held - key_released WHERE key_id = held_key;
                    END IF;
                END IF;
            END IF;
            RETURN NULL;
        END $$;
        CREATE FUNCTION gatewaytui_admit(
            p_request TEXT, p_tenant BIGINT, p_amount BIGINT, p_owner TEXT, p_resize BOOLEAN,
            p_key TEXT, p_budget BIGINT, p_key_amount BIGINT, p_from_hour BIGINT,
            p_scopes TEXT[], p_limits BIGINT[], p_amounts BIGINT[]
        ) RETURNS TABLE (verdict TEXT, at_second BIGINT) LANGUAGE plpgsql AS $$
        DECLARE
            left_micro BIGINT; key_held BIGINT; used BIGINT; now_s BIGINT; i INT;
            n INT := COALESCE(array_length(p_scopes, 1), 0);
        BEGIN
            -- locks first, always in this order: credit row, key budget row, the scopes (sorted by the caller)
            IF p_resize AND NOT EXISTS (SELECT 1 FROM credit_holds WHERE request_id = p_request) THEN
                RETURN QUERY SELECT 'gone'::TEXT, 0::BIGINT;
                RETURN;
            END IF;
            IF p_amount <> 0 THEN
                SELECT balance - held INTO left_micro FROM credit WHERE tenant_id = p_tenant FOR UPDATE;
                IF NOT FOUND OR (p_amount > 0 AND left_micro < p_amount) THEN
                    RETURN QUERY SELECT 'credit'::TEXT, 0::BIGINT;
                    RETURN;
                END IF;
            END IF;
            IF p_key_amount <> 0 THEN
                SELECT held INTO key_held FROM key_budget WHERE key_id = p_key FOR UPDATE;
                IF NOT FOUND THEN
                    INSERT INTO key_budget (key_id) VALUES (p_key) ON CONFLICT DO NOTHING;
                    SELECT held INTO key_held FROM key_budget WHERE key_id = p_key FOR UPDATE;
                END IF;
                IF p_key_amount > 0 THEN  -- a fresh read: settlements that committed while we waited count
                    SELECT COALESCE(SUM(spent), 0) INTO used FROM key_spend
                        WHERE key_id = p_key AND hour >= p_from_hour;
                    IF p_budget - used - key_held < p_key_amount THEN
                        RETURN QUERY SELECT 'budget'::TEXT, 0::BIGINT;
                        RETURN;
                    END IF;
                END IF;
            END IF;
            FOR i IN 1..n LOOP
                PERFORM pg_advisory_xact_lock(hashtextextended(p_scopes[i], 0));
            END LOOP;
            now_s := FLOOR(EXTRACT(EPOCH FROM clock_timestamp()));
            FOR i IN 1..n LOOP
                SELECT COALESCE(SUM(tokens), 0) INTO used FROM token_rates
                    WHERE scope = p_scopes[i] AND second > now_s - 60;
                IF used + p_amounts[i] > p_limits[i] THEN
                    RETURN QUERY SELECT 'rate:' || i, now_s;
                    RETURN;
                END IF;
            END LOOP;
            -- every check passed: the writes
            IF p_amount <> 0 THEN
                UPDATE credit SET held = held + p_amount WHERE tenant_id = p_tenant;
            END IF;
            IF p_key_amount <> 0 THEN
                UPDATE key_budget SET held = held + p_key_amount WHERE key_id = p_key;
            END IF;
            IF p_resize THEN
                UPDATE credit_holds SET amount = amount + p_amount,
                    key_id = COALESCE(key_id, p_key), key_amount = key_amount + p_key_amount
                    WHERE request_id = p_request;
            ELSIF p_amount > 0 THEN
                INSERT INTO credit_holds (request_id, tenant_id, amount, owner, created_at, key_id, key_amount)
                    VALUES (p_request, p_tenant, p_amount, p_owner, EXTRACT(EPOCH FROM clock_timestamp()),
                            p_key, p_key_amount);
            END IF;
            FOR i IN 1..n LOOP
                INSERT INTO token_rates (scope, second, tokens) VALUES (p_scopes[i], now_s, p_amounts[i])
                    ON CONFLICT (scope, second) DO UPDATE SET tokens = token_rates.tokens + EXCLUDED.tokens;
            END LOOP;
            RETURN QUERY SELECT 'ok'::TEXT, now_s;
        END $$;
        """
    )


@migrations()
def m010_credit_slices(db: Database) -> None:
    """PostgreSQL only: credit slices (``billing/slices.py``). A slice is a credit hold (a ``credit_holds``
    row named ``slice:<instance>:<tenant>:<n>``, owned, leased and swept like any hold) that an instance
    reserves for a tenant it admits often, and then admits that tenant's requests from in memory. A settled
    request's cost comes off its slice with the ledger entries that charge it, in the same transaction: a
    ``credit_draws`` row, whose trigger shrinks the slice and the tenant's ``held`` by the same amount (the
    balance falls by the cost, so ``balance - held`` stays what it was: the rest of the slice stays
    reserved). One row per request, so a settlement written twice draws once; rows older than an hour go
    with the lease sweep. The trigger runs once per statement (the writer inserts a batch's draws in one):
    it locks the tenants' credit rows first, in tenant order, as admission and the sweep do, then takes each
    slice's draws off it in one update."""
    if dialect(db) != "postgresql":
        return
    db.executescript(
        """
        CREATE TABLE credit_draws (
            request_id TEXT PRIMARY KEY,
            slice TEXT NOT NULL,
            tenant_id BIGINT NOT NULL,
            amount BIGINT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX credit_draws_created ON credit_draws(created_at);
        CREATE FUNCTION credit_draw_fn() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM credit WHERE tenant_id IN (SELECT tenant_id FROM drawn) ORDER BY tenant_id FOR UPDATE;
            WITH t AS (SELECT slice, SUM(amount) AS amount FROM drawn GROUP BY slice),
                s AS (UPDATE credit_holds h SET amount = h.amount - t.amount FROM t
                    WHERE h.request_id = t.slice AND h.amount >= t.amount RETURNING h.tenant_id, t.amount),
                c AS (SELECT tenant_id, SUM(amount) AS amount FROM s GROUP BY tenant_id)
            UPDATE credit SET held = credit.held - c.amount FROM c WHERE credit.tenant_id = c.tenant_id;
            RETURN NULL;
        END $$;
        CREATE TRIGGER credit_draw AFTER INSERT ON credit_draws REFERENCING NEW TABLE AS drawn
            FOR EACH STATEMENT EXECUTE FUNCTION credit_draw_fn();
        """
    )
