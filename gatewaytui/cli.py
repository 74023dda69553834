"""The ``gatewaytui`` command: run the gateway (with or without the console) and administer it.

    gatewaytui [--config PATH] [--demo [--keep]] [--no-ui] [--host H] [--port N]
    gatewaytui keys create --tenant NAME [--create] [--kind payg|subscription] [--label L] [--rpm N] [--models a,b] [--expires-days D]
                           [--budget-usd AMOUNT [--budget-period day|month|<N>h]] [--tpm N]
    gatewaytui keys list | keys revoke ID
    gatewaytui credits add --tenant NAME --usd AMOUNT [--create]
    gatewaytui accounts add --provider P --api-key K [--base-url URL] [--label L] | accounts list
    gatewaytui tenants list | tenants tier --tenant NAME (--tier T | --none)
    gatewaytui tenants cap --tenant NAME (--usd AMOUNT | --clear) [--model M]
    gatewaytui tenants tpm --tenant NAME (N | --clear)
    gatewaytui attach URL        (console against a running headless gateway; admin token from env)

Admin commands write the database directly and work while the gateway runs; it notices within a second.
Their arguments are checked by the same action specs (``gatewaytui.ops``) as the console's and the admin
API's, and they share the operator domain's database work. They never read upstream secrets, and they
refuse a database that does not exist (``--demo`` reaches the running demo's) instead of creating an
empty one; only ``accounts add`` and a command given ``--create`` may start a new database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import config as configmod
from .billing.plans import check_tier
from .billing.pricing import format_usd, parse_usd
from .catalog import Catalog
from .demo import profile as demo_profile
from .model import GatewayError
from .ops import accounts as account_ops
from .ops import tenants as tenant_ops
from .ops.spec import Bounds
from .pool.enroll import default_label, insert_row
from .store import accounts as account_store
from .store import db as dbmod
from .store import keys as key_store
from .store import ledger as ledger_store
from .store import settings as settings_store
from .store import tenants as tenant_store
from .telemetry import requestlog
from .vault import Vault, VaultError


class CliError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gatewaytui", description="Self-hosted LLM API gateway with a terminal console."
    )
    p.add_argument("--config", help="TOML config file (default ./gatewaytui.toml or $GATEWAYTUI_CONFIG)")
    p.add_argument("--host", help="override [server] host")
    p.add_argument("--port", type=int, help="override [server] port")
    p.add_argument(
        "--demo",
        action="store_true",
        help="run with the built-in fake upstream and a demo tenant (a fresh database each run); "
        "with an admin command: act on the demo's database",
    )
    p.add_argument("--keep", action="store_true", help="--demo: keep the previous demo run's database")
    p.add_argument(
        "--no-ui", action="store_true", help="run headless (logs to stderr); stop with SIGINT/SIGTERM"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="run N server processes on one port (headless, PostgreSQL store only)",
    )
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a --workers worker
    p.add_argument("--siblings", help=argparse.SUPPRESS)  # a --workers worker: the workers' private run dir
    p.add_argument(
        "--log-level",
        default=os.environ.get("GATEWAYTUI_LOG", "info"),
        help="debug, info (default; $GATEWAYTUI_LOG), warning or error",
    )
    p.add_argument(
        "--log-format",
        choices=configmod.LOG_FORMATS,
        help="headless log format: plain (default; [log] format) or json (one object per line)",
    )
    sub = p.add_subparsers(dest="command")
    # every admin command also takes --demo after its name (default SUPPRESS: never undoes a leading --demo)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--demo", action="store_true", default=argparse.SUPPRESS, help="act on the running demo's database"
    )

    keys = sub.add_parser("keys", help="tenant API keys").add_subparsers(dest="action", required=True)
    kc = keys.add_parser(
        "create", parents=[common], help="mint a key for a tenant; prints the secret on the last line"
    )
    kc.add_argument("--tenant", required=True)
    kc.add_argument("--create", action="store_true", help="create the tenant if there is none of that name")
    kc.add_argument("--kind", choices=key_store.KINDS, default="payg")
    kc.add_argument("--label")
    kc.add_argument("--rpm", type=int)
    kc.add_argument("--models", help="comma-separated model allow-list")
    kc.add_argument("--expires-days", type=float)
    kc.add_argument("--budget-usd", help="spend budget per --budget-period (decimal USD), held like credit")
    kc.add_argument(
        "--budget-period", help="day (default) or month (calendar, UTC), or a rolling window like 24h"
    )
    kc.add_argument("--tpm", type=int, help="tokens per minute (input + output)")
    keys.add_parser("list", parents=[common], help="one line per key: id tenant kind label state")
    kr = keys.add_parser("revoke", parents=[common], help="revoke a key by id")
    kr.add_argument("id")

    credits = sub.add_parser("credits", help="tenant credit").add_subparsers(dest="action", required=True)
    ca = credits.add_parser(
        "add", parents=[common], help="add prepaid credit (decimal USD, exact to the micro-dollar)"
    )
    ca.add_argument("--tenant", required=True)
    ca.add_argument("--usd", required=True, help="at most [billing] max_credit_usd (default 10000)")
    ca.add_argument("--note")
    ca.add_argument("--create", action="store_true", help="create the tenant if there is none of that name")
    cb = credits.add_parser("balance", parents=[common], help="show a tenant's balance")
    cb.add_argument("--tenant", required=True)

    accounts = sub.add_parser("accounts", help="upstream accounts").add_subparsers(
        dest="action", required=True
    )
    aa = accounts.add_parser("add", parents=[common], help="add an API-key account")
    aa.add_argument("--provider", required=True, choices=configmod.PROVIDERS)
    aa.add_argument("--api-key", required=True)
    aa.add_argument("--base-url")
    aa.add_argument("--label")
    aa.add_argument("--priority", type=int, default=0)
    aa.add_argument("--rpm", type=int)
    accounts.add_parser("list", parents=[common], help="one line per account (never a secret)")

    tenants = sub.add_parser("tenants", help="tenants: tiers and spending caps").add_subparsers(
        dest="action", required=True
    )
    tenants.add_parser("list", parents=[common], help="one line per tenant: name tier status balance caps")
    tt = tenants.add_parser(
        "tier", parents=[common], help="put a tenant on a subscription tier by hand, or take it off"
    )
    tt.add_argument("--tenant", required=True)
    tier_choice = tt.add_mutually_exclusive_group(required=True)
    tier_choice.add_argument("--tier", help="a tier name from the config's [[tiers]]")
    tier_choice.add_argument("--none", action="store_true", help="take the tenant off its tier")
    tc = tenants.add_parser(
        "cap", parents=[common], help="the most one request may cost (decimal USD), for one model or all"
    )
    tc.add_argument("--tenant", required=True)
    cap_choice = tc.add_mutually_exclusive_group(required=True)
    cap_choice.add_argument("--usd", help="the cap, e.g. 0.05")
    cap_choice.add_argument("--clear", action="store_true", help="remove the cap")
    tc.add_argument("--model", help="cap only this model (a configured name or alias)")
    tp = tenants.add_parser(
        "tpm", parents=[common], help="tokens per minute across a tenant's keys (input + output)"
    )
    tp.add_argument("--tenant", required=True)
    tpm_choice = tp.add_mutually_exclusive_group(required=True)
    tpm_choice.add_argument("tpm", nargs="?", type=int, help="the limit, e.g. 100000")
    tpm_choice.add_argument(
        "--clear", action="store_true", help="remove it (the config's [limits] tenant_tpm_default applies)"
    )

    at = sub.add_parser("attach", help="open the console against a running gateway (admin token from env)")
    at.add_argument("url")
    at.add_argument("--token-env", default="GATEWAYTUI_ADMIN_TOKEN")
    return p


def load_config(args: argparse.Namespace, *, for_run: bool) -> configmod.Config:
    """The config file's, or the demo's (``--demo``, or running with no config file)."""
    path = Path(args.config) if args.config else configmod.default_path()
    if args.config and not path.exists():
        raise CliError(f"config file not found: {path}")
    if args.demo or (for_run and not path.exists()):
        cfg = demo_profile.demo_config()
    elif path.exists():
        cfg = configmod.load(path)
    else:
        cfg = configmod.Config()
    if args.host:
        cfg.server.host = args.host
    if args.port is not None:
        if not (0 <= args.port < 65536):
            raise CliError("--port must be between 0 and 65535")
        cfg.server.port = args.port
    return cfg


# the commands that may start a new database: adding an account, and any command given --create
INITIALISING = frozenset({("accounts", "add")})


def open_database(cfg: configmod.Config, args: argparse.Namespace) -> Any:
    """The database an admin command acts on; one that does not exist is an error, not a new empty file."""
    path = Path(cfg.database.path)
    if (
        not cfg.database.shared
        and not path.exists()
        and not ((args.command, args.action) in INITIALISING or getattr(args, "create", False))
    ):
        if cfg.demo:
            hint = "the demo is not running (start it with `gatewaytui --demo`)"
        elif cfg.path:
            hint = f"check [database] path in {cfg.path}, or start the gateway once to create it"
        else:
            hint = (
                f"no config file ({configmod.default_path()}); to reach a running demo add --demo, "
                "or give --config"
            )
        raise CliError(f"no database at {path}: {hint}")
    dbmod.migrate(cfg.database.target)
    return dbmod.connect(cfg.database.target)


def catalog_of(cfg: configmod.Config, conn: Any) -> Catalog:
    """The models as the running gateway resolves them (config names and aliases, the operator's aliases)."""
    catalog = Catalog(cfg.models, cfg.routing)
    catalog.apply_settings(settings_store.all_settings(conn))
    return catalog


def bounds(cfg: configmod.Config, conn: Any) -> Bounds:
    """What the specs check arguments against, as the running gateway would (its models and limits)."""
    return Bounds.of(cfg, catalog_of(cfg, conn))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return run_gateway(args, argv)
        if args.command == "attach":
            return attach(args)
        cfg = load_config(args, for_run=False)
        conn = open_database(cfg, args)
        try:
            return COMMANDS[(args.command, args.action)](cfg, conn, args)
        finally:
            conn.close()
    except configmod.ConfigError as exc:
        lines = exc.messages or [str(exc)]
        print(
            f"error: {len(lines)} problem{'s' if len(lines) > 1 else ''} in the configuration:",
            file=sys.stderr,
        )
        for line in lines:
            print(f"  {line}", file=sys.stderr)
        return 2
    except GatewayError as err:  # an action's spec refused the arguments, or the store is unreachable
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    except (CliError, VaultError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _line_to(stream: Any) -> Any:
    """A function writing one message as one line in one write: with ``--workers N`` the processes share the
    stream, and print() writes a message and its newline apart (unbuffered, two writes), so two workers'
    lines could merge into one ("... listening on ...gatewaytui listening on ...")."""

    def write(msg: str) -> None:
        stream.write(f"{msg}\n")
        stream.flush()

    return write


def run_gateway(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    cfg = load_config(args, for_run=True)
    if args.keep and not cfg.demo:
        raise CliError("--keep applies to the demo only (--demo, or no config file)")
    removed = False
    if cfg.demo:
        try:
            removed = demo_profile.prepare(Path(cfg.database.path), keep=args.keep)
        except demo_profile.DemoRunning as exc:
            raise CliError(str(exc)) from None
    if args.log_format:
        cfg.log.format = args.log_format
    from . import workers

    try:
        workers.check(cfg, args.workers, ui=not args.no_ui)
    except workers.WorkersError as exc:
        raise CliError(str(exc)) from None
    if args.workers > 1:
        passed = list(sys.argv[1:] if argv is None else argv)
        return workers.supervise(
            _without_options(passed, ("--workers", "--port")),
            cfg,
            args.workers,
            _line_to(sys.stderr),
        )
    level = getattr(logging, str(args.log_level).upper(), logging.INFO)
    listener = None
    if args.no_ui:
        listener = requestlog.configure(level, cfg.log.format, cfg.log.file)
    else:
        cfg.log.requests = False  # the console shows requests; its log goes nowhere
        logging.getLogger().handlers.clear()
        logging.getLogger().addHandler(logging.NullHandler())
        logging.getLogger().setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise
    from . import host

    try:
        import uvloop

        uvloop.install() if hasattr(uvloop, "install") else None
    except ImportError:  # pragma: no cover
        pass
    if not args.no_ui:
        announce: Any = _line_to(sys.stdout)
    elif cfg.log.format == "plain" and not cfg.log.file:
        announce = _line_to(sys.stderr)
    else:  # JSON lines (or the log file) only: announced through the log, whatever --log-level says
        announcer = logging.getLogger("gatewaytui.announce")
        announcer.setLevel(logging.INFO)
        announce = announcer.info
    if cfg.demo:
        db = Path(cfg.database.path)
        if removed:
            announce(f"demo: starting fresh (the previous run's database {db} was removed; --keep reuses it)")
        announce(
            f"demo: database {db} (admin commands reach it with --demo, e.g. `gatewaytui --demo keys list`)"
        )
    try:
        return asyncio.run(
            host.run(
                cfg, ui=not args.no_ui, announce=announce, reuse_port=args.reuse_port, siblings=args.siblings
            )
        )
    except OSError as exc:  # cannot listen (the message says why and what to do)
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        if listener is not None:
            listener.stop()  # writes out what is still queued


def _without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """``argv`` without the named options and their values (``--opt V`` or ``--opt=V``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(n + "=" for n in names)):
            out.append(arg)
    return out


def attach(args: argparse.Namespace) -> int:
    token = os.environ.get(args.token_env)
    if not token:
        raise CliError(f"set {args.token_env} to the gateway's admin token")
    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{args.url}: give the gateway's URL, e.g. http://127.0.0.1:8080")
    check_console_api(url, token, args.token_env)
    try:
        from .tui.app import ConsoleApp
        from .tui.remote import RemoteSource
    except ImportError as exc:  # pragma: no cover
        raise CliError(f"console unavailable: {exc}") from None
    ConsoleApp(RemoteSource(url, token)).run()
    return 0


def check_console_api(url: str, token: str, token_env: str) -> None:
    """Before opening the console: the gateway answers its console API with this token, or say why not."""
    import httpx

    try:
        r = httpx.get(f"{url}/admin/snapshot", headers={"authorization": f"Bearer {token}"}, timeout=10)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {url}: {exc.__class__.__name__}: {exc}") from None
    if r.status_code == 200:
        try:
            if isinstance(r.json(), dict):
                return
        except ValueError:
            pass
        raise CliError(
            f"{url}/admin/snapshot did not answer with a console snapshot: is this a gatewaytui gateway?"
        )
    detail = r.text.strip()[:2000] or r.reason_phrase
    if r.status_code in (401, 403):
        raise CliError(f"{url} refused the admin token in ${token_env} ({r.status_code}): {detail}")
    if r.status_code == 404:
        raise CliError(
            f"{url} has no console API (404: {detail}); is it a gatewaytui gateway with its admin token set?"
        )
    raise CliError(f"{url}/admin/snapshot answered {r.status_code}: {detail}")


# ------------------------------------------------------------------ admin commands


def _keys_create(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    expires = time.time() + args.expires_days * 86400 if args.expires_days else None
    budget = None
    if args.budget_usd is not None:
        try:
            budget = parse_usd(args.budget_usd)
        except ValueError as exc:
            raise CliError(f"--budget-usd: {exc}") from None
    elif args.budget_period is not None:
        raise CliError("--budget-period needs --budget-usd")
    key = tenant_ops.MINT_KEY.parse(
        {"tenant": args.tenant, "kind": args.kind, "label": args.label, "rpm": args.rpm, "models": models}
        | {"create": args.create}
        | ({"expires_at": expires} if expires is not None else {})
        | ({"budget_micro": budget, "budget_period": args.budget_period} if budget is not None else {})
        | ({"tpm": args.tpm} if args.tpm is not None else {}),
        bounds=bounds(cfg, conn),
    )
    with dbmod.Transaction(conn):
        tenant, created, row, secret = tenant_ops.mint_rows(conn, **key)
    if created:
        print(f"created tenant {tenant['name']}")
    limits = [f"budget {format_usd(budget)} per {row['budget_period']}"] if budget is not None else []
    limits += [f"{args.tpm:,} tokens/min"] if args.tpm is not None else []
    print(
        f"key {row['id']} for tenant {tenant['name']} ({args.kind}{', ' + args.label if args.label else ''}"
        f"{''.join(', ' + x for x in limits)}); the secret is shown once:"
    )
    print(secret)
    return 0


def _keys_list(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    for k in key_store.listing(conn):
        print(
            f"{k['id']}\t{k['tenant']}\t{k['kind']}\t{k.get('label') or '-'}\t{key_store.state(k)}\t{k['prefix']}..."
        )
    return 0


def _keys_revoke(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    tenant_ops.REVOKE_KEY.parse({"key_id": args.id})
    with dbmod.Transaction(conn):
        row = key_store.get(conn, args.id)
        if row is None:
            raise CliError(f"no key with id {args.id}")
        done = key_store.revoke(conn, args.id)
    print(f"revoked {args.id}" if done else f"{args.id} was already revoked")
    return 0


def _credits_add(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    try:
        amount = parse_usd(args.usd)
    except ValueError as exc:
        raise CliError(f"--usd: {exc}") from None
    credit = tenant_ops.CREDIT.parse(
        {"tenant": args.tenant, "amount_micro": amount, "kind": "topup", "note": args.note or "cli"},
        bounds=bounds(cfg, conn),
    )
    with dbmod.Transaction(conn):
        tenant, _ = tenant_ops.credit_rows(
            conn,
            args.tenant,
            amount,
            "topup",
            f"cli-topup:{time.time_ns()}",
            credit["note"],
            "cli",
            args.create,
        )
        balance = ledger_store.balance(conn, tenant["id"])
    print(
        f"credited {format_usd(amount)} to {tenant['name']}; balance {format_usd(balance)} ({balance} micro-USD)"
    )
    return 0


def _credits_balance(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    tenant = tenant_store.by_name(conn, args.tenant)
    if tenant is None:
        raise CliError(f"no tenant named {args.tenant!r}")
    balance = ledger_store.balance(conn, tenant["id"])
    print(f"{tenant['name']}\t{format_usd(balance)}\t{balance}")
    return 0


def _accounts_add(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    account = account_ops.ADD_ACCOUNT.parse(
        {
            "provider": args.provider,
            "api_key": args.api_key.strip(),
            "base_url": args.base_url,
            "label": args.label,
            "priority": args.priority,
            "rpm": args.rpm,
        }
    )
    key_file = cfg.security.secret_key_file or str(Path(cfg.database.path).with_suffix(".key"))
    vault = Vault.open(cfg.security.secret_key_env, key_file, conn)
    label = account["label"] or default_label(args.provider)
    with dbmod.Transaction(conn):
        try:
            row = insert_row(
                conn,
                label=label,
                provider=args.provider,
                base_url=args.base_url,
                secret=vault.encrypt(args.api_key),
                priority=args.priority,
                rpm=args.rpm,
            )
        except ValueError as exc:
            raise CliError(str(exc)) from None
    print(f"added account {row['id']} ({label}, {args.provider}, {row['base_url']})")
    return 0


def _accounts_list(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    states = account_store.load_states(conn)
    now = time.time()
    for a in account_store.listing(conn):
        st = states.get(a["id"]) or {}
        if not a["enabled"]:
            health = "disabled"
        elif (st.get("cooldown_until") or 0) > now:
            health = f"cooldown({st.get('cause')}, {int(st['cooldown_until'] - now)}s)"
        else:
            health = "healthy"
        print(f"{a['id']}\t{a['label']}\t{a['provider']}\t{a['base_url']}\t{health}")
    return 0


def _tenants_list(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    balances = ledger_store.balances(conn)
    for t in tenant_store.all_tenants(conn):
        cap = format_usd(t["per_call_cap_micro"]) if t.get("per_call_cap_micro") else "-"
        model_caps = json.loads(t["model_caps"]) if t.get("model_caps") else {}
        caps = ",".join(f"{m}={format_usd(v)}" for m, v in sorted(model_caps.items())) or "-"
        status = t.get("subscription_status") or "-"
        tpm = t.get("tpm") or cfg.limits.tenant_tpm_default
        rate = f"{tpm} tpm" + ("" if t.get("tpm") else " (default)") if tpm else "- tpm"
        print(
            f"{t['name']}\t{t.get('tier') or '-'}\t{status}\t{format_usd(balances.get(t['id'], 0))}\tcap {cap}\tmodel caps {caps}\t{rate}"
        )
    return 0


def _tenants_tier(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    tier = None if args.none else args.tier
    tenant_ops.SET_TIER.parse({"tenant": args.tenant, "tier": tier})
    check_tier(cfg.tiers, tier)
    with dbmod.Transaction(conn):
        row = tenant_ops.tier_rows(conn, args.tenant, tier)
    print(f"{row['name']} is now on tier {tier}" if tier else f"{row['name']} is off its tier")
    return 0


def _tenants_cap(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    cap = None
    if not args.clear:
        try:
            cap = parse_usd(args.usd)
        except ValueError as exc:
            raise CliError(f"--usd: {exc}") from None
    tenant_ops.SET_CAP.parse({"tenant": args.tenant, "cap_micro": cap, "model": args.model})
    model = tenant_ops.cap_model(catalog_of(cfg, conn), args.model)  # as the running gateway names it
    try:
        with dbmod.Transaction(conn):
            row = tenant_ops.cap_rows(conn, args.tenant, cap, model)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    what = f"on {model}" if model else "per call"
    print(f"{row['name']}: cap {what} {format_usd(cap)}" if cap else f"{row['name']}: cap {what} cleared")
    return 0


def _tenants_tpm(cfg: configmod.Config, conn: Any, args: argparse.Namespace) -> int:
    tpm = None if args.clear else args.tpm
    tenant_ops.SET_TENANT_TPM.parse({"tenant": args.tenant, "tpm": tpm})
    with dbmod.Transaction(conn):
        row = tenant_ops.tpm_rows(conn, args.tenant, tpm)
    if tpm:
        print(f"{row['name']}: at most {tpm:,} tokens per minute")
    else:
        default = cfg.limits.tenant_tpm_default
        print(
            f"{row['name']}: token rate cleared" + (f" (default {default:,} per minute)" if default else "")
        )
    return 0


COMMANDS = {
    ("keys", "create"): _keys_create,
    ("keys", "list"): _keys_list,
    ("keys", "revoke"): _keys_revoke,
    ("credits", "add"): _credits_add,
    ("credits", "balance"): _credits_balance,
    ("accounts", "add"): _accounts_add,
    ("accounts", "list"): _accounts_list,
    ("tenants", "list"): _tenants_list,
    ("tenants", "tier"): _tenants_tier,
    ("tenants", "cap"): _tenants_cap,
    ("tenants", "tpm"): _tenants_tpm,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
