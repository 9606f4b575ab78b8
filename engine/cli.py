"""The `klaxon` command: one subcommand per job, each importing only what it needs."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.config import SettingsError

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _COMMANDS[name] = fn
        return fn

    return register


class CliError(Exception):
    """A problem the user can fix; printed as `klaxon: error: ...` with exit status 2."""


# ---------------------------------------------------------------- rules: check, fmt, replay


@command("check")
def _check(args: argparse.Namespace) -> int:
    from dsl import check_rules
    from dsl.parser import parse_collect

    total_errors = 0
    total_rules = 0
    for name in args.files:
        text = _read(name)
        errors = check_rules(text, name)
        for err in errors:
            print(err)
        total_errors += len(errors)
        if not errors:
            tree, _ = parse_collect(text, name)
            total_rules += sum(1 for b in tree.blocks if b.kind == "rule")
    if total_errors:
        plural = "s" if total_errors != 1 else ""
        print(f"{total_errors} error{plural}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"ok: {total_rules} rule{'s' if total_rules != 1 else ''}")
    return 0


@command("fmt")
def _fmt(args: argparse.Namespace) -> int:
    from dsl import DslErrors, parse, print_rules

    status = 0
    for name in args.files:
        text = _read(name)
        try:
            out = print_rules(parse(text, name))
        except DslErrors as err:
            print(err, file=sys.stderr)
            status = 1
            continue
        if args.write:
            if out != text:
                Path(name).write_text(out, encoding="utf-8")
        elif args.check:
            if out != text:
                print(f"{name}: not formatted", file=sys.stderr)
                status = 1
        else:
            sys.stdout.write(out)
    return status


@command("replay")
def _replay(args: argparse.Namespace) -> int:
    from engine.replay import run_replay

    return run_replay(args)


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"no such file: {name}") from None
    except UnicodeDecodeError:
        raise CliError(f"{name} is not UTF-8 text") from None
    except OSError as err:
        raise CliError(f"cannot read {name}: {err.strerror}") from None


# ---------------------------------------------------------------- the running system


def _database() -> Any:
    from engine.config import settings
    from engine.store.db import Database

    return Database(settings().database_url)


@command("db")
def _db(args: argparse.Namespace) -> int:
    from engine.store.migrate import current_revision, upgrade

    db = _database()
    if args.db_command == "upgrade":
        revision = upgrade(db)
        print(f"the store is at revision {revision}")
    else:
        print(current_revision(db) or "(empty: run klaxon db upgrade)")
    return 0


@command("config")
def _config(args: argparse.Namespace) -> int:
    from engine.config import settings

    for name, value in settings().masked().items():
        print(f"{name}={value}")
    return 0


@command("apikey")
def _apikey(args: argparse.Namespace) -> int:
    from engine.auth.errors import AuthError
    from engine.auth.keys import create_key, list_keys, revoke_key
    from engine.auth.principal import SCOPES

    db = _database()
    if args.key_command == "create":
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise CliError(
                f"unknown scope {', '.join(unknown) or '(none given)'}; scopes are {', '.join(SCOPES)}"
            )
        try:
            created = create_key(
                db, name=args.name, scopes=scopes, hmac=args.hmac, rate_limit=args.rate_limit
            )
        except AuthError as err:
            raise CliError(f"{err.field}: {err}" if err.field else str(err)) from None
        print(f"created API key '{args.name}' with scopes {', '.join(scopes)}; it is shown once:")
        if created.hmac_secret:
            print(
                f"HMAC secret (sign bodies: X-Klaxon-Signature: sha256=HEX): {created.hmac_secret}"
            )
        print(created.token)
    elif args.key_command == "list":
        for k in list_keys(db):
            state = "revoked" if k["revoked_at"] else "active"
            print(
                f"{k['id']:>4}  {k['name']:<24} {','.join(k['scopes']):<24} {k['prefix']}…  {state}"
            )
    else:
        if not revoke_key(db, args.id):
            raise CliError(f"no API key with id {args.id}")
        print(f"revoked API key {args.id}")
    return 0


@command("user")
def _user(args: argparse.Namespace) -> int:
    from engine.auth.commands import user_command

    return user_command(args)


@command("team")
def _team(args: argparse.Namespace) -> int:
    from engine.auth.commands import team_command

    return team_command(args)


@command("audit")
def _audit(args: argparse.Namespace) -> int:
    from engine.auth.commands import audit_command

    return audit_command(args)


@command("api")
def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from engine.api.app import create_app

    _warn_public(args.host)
    app = create_app()
    _freeze_startup_objects()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _freeze_startup_objects() -> None:
    """Move what a long-running process built at startup (modules, the app, the store's
    metadata) out of the garbage collector's view: every full collection scanned all of it,
    15% of the worker's time on a batch of new alerts (bench/ingest, BENCHMARKS.md). Only
    the served processes do this; tests building many apps in one process must not."""
    import gc

    gc.collect()
    gc.freeze()


@command("worker")
def _worker(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from engine.config import settings
    from engine.store.migrate import upgrade
    from engine.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    db = _database()
    upgrade(db)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = Worker(db, settings(), hooks=_worker_hooks())
    from engine.scheduler import NotifyScheduler

    NotifyScheduler(db, settings()).start(stop)  # deliveries, retries, escalations, in a thread
    from engine.analytics.schedules import start_report_loop

    start_report_loop(db, stop)  # scheduled PDF reports through their channels
    _freeze_startup_objects()
    with contextlib.suppress(KeyboardInterrupt):
        worker.run(stop)
    return 0


@command("channel")
def _channel(args: argparse.Namespace) -> int:
    from engine.notify.commands import channel_command

    return channel_command(args)


@command("oncall")
def _oncall(args: argparse.Namespace) -> int:
    from engine.notify.commands import oncall_command

    return oncall_command(args)


@command("notify")
def _notify(args: argparse.Namespace) -> int:
    from engine.notify.commands import notify_command

    return notify_command(args)


@command("up")
def _up(args: argparse.Namespace) -> int:
    from engine.config import settings
    from engine.demo import load_demo, store_is_empty
    from engine.store import rules as rules_store
    from engine.store.migrate import upgrade
    from engine.up import run_up

    s = settings()
    db = _database()
    print(f"klaxon: preparing the store ({_where(s.database_url)})")
    upgrade(db)
    if args.demo and store_is_empty(db):
        print("klaxon: loading 30 days of demo history (first run only)")
        print(f"klaxon: {load_demo(db, progress=lambda m: print(f'  {m}', flush=True))}")
    with db.connect() as conn:
        rules_store.ensure_rules(conn, s.rules_file)
    if args.demo:
        _print_logins(db)
    db.dispose()
    return run_up(s, api_port=args.api_port, ui_port=args.ui_port, with_ui=not args.no_ui)


def _print_logins(db: Any) -> None:
    try:
        from engine.auth.demo import create_demo_users
    except ImportError:
        return
    users = create_demo_users(db)
    if users:
        print("klaxon: demo accounts (log in to the web app with any of them):")
        for email, role, password in users:
            print(f"  {role:<9} {email:<28} password: {password}")
        print('  (the API too: POST /api/v1/auth/login {"email": ..., "password": ...})')


def _where(url: str) -> str:
    from engine.config import mask_url

    return url.split("///", 1)[-1] if url.startswith("sqlite") else mask_url(url)


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from engine.demo import load_demo, store_is_empty
    from engine.store.migrate import upgrade

    db = _database()
    upgrade(db)
    if not store_is_empty(db) and not args.force:
        raise CliError(
            "the store already holds alerts; demo history goes into an empty store (or pass --force)"
        )
    print(load_demo(db, days=args.days, progress=lambda m: print(f"  {m}", flush=True)))
    _print_logins(db)
    return 0


@command("ui")
def _ui(args: argparse.Namespace) -> int:
    import os

    from engine.config import ROOT

    _warn_public(args.host)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app" / "main.py"),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    # Become Streamlit rather than wait on it: a SIGTERM from `klaxon up`, a Procfile runner or
    # a test then reaches the server itself instead of orphaning it.
    os.chdir(ROOT)
    os.execv(sys.executable, cmd)


@command("export")
def _export(args: argparse.Namespace) -> int:
    from engine.analytics.commands import run_export

    return run_export(args)


@command("backtest")
def _backtest(args: argparse.Namespace) -> int:
    from engine.analytics.commands import run_backtest

    return run_backtest(args)


@command("report")
def _report(args: argparse.Namespace) -> int:
    from engine.analytics.commands import run_report

    return run_report(args)


@command("analytics")
def _analytics(args: argparse.Namespace) -> int:
    from engine.analytics.commands import run_analytics

    return run_analytics(args)


def _worker_hooks() -> list[Any]:
    """What runs inside each batch's transaction besides storing alerts (notifications)."""
    from engine.hooks import worker_hooks

    return worker_hooks()


def _warn_public(host: str) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"klaxon: listening on {host}: make sure only trusted networks can reach it",
            file=sys.stderr,
        )


# ---------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klaxon",
        description="Klaxon: alerts in, the right people paged, noise out.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help="check rules files; print every error with a caret")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when all is well")

    p = sub.add_parser("fmt", help="print rules files in canonical layout")
    p.add_argument("files", nargs="+", metavar="FILE")
    group = p.add_mutually_exclusive_group()
    group.add_argument("-w", "--write", action="store_true", help="rewrite the files in place")
    group.add_argument("--check", action="store_true", help="exit 1 if a file is not formatted")

    p = sub.add_parser("replay", help="run rules over a JSONL file of events; print transitions")
    p.add_argument("--rules", required=True, metavar="FILE")
    p.add_argument("--events", required=True, metavar="FILE", help="JSONL events, or - for stdin")
    p.add_argument("--batch-size", type=_positive_int, default=50_000, metavar="N")
    p.add_argument("--until", metavar="TS", help="advance the clock to TS after the last event")
    p.add_argument("--progress", action="store_true", help="report progress on stderr")

    p = sub.add_parser("db", help="the store's schema")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    dbsub.add_parser("upgrade", help="apply every migration (also done by klaxon up and worker)")
    dbsub.add_parser("revision", help="print the store's schema revision")

    sub.add_parser("config", help="print the effective settings, secrets masked")

    p = sub.add_parser("apikey", help="API keys for integrations and scripts")
    keysub = p.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    k = keysub.add_parser("create", help="create a key; printed once, alone on the last line")
    k.add_argument("--name", required=True)
    k.add_argument("--scopes", default="ingest", help="comma-separated: ingest, read, write, admin")
    k.add_argument("--hmac", action="store_true", help="also require an HMAC-SHA256 body signature")
    k.add_argument("--rate-limit", type=_positive_int, default=None, metavar="PER_MIN")
    keysub.add_parser("list", help="list keys (never the keys themselves)")
    k = keysub.add_parser("revoke", help="revoke a key by id")
    k.add_argument("id", type=int)

    p = sub.add_parser("api", help="serve the HTTP API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)

    sub.add_parser("worker", help="run the rules over queued events, persist alerts, notify")

    from engine.auth.commands import add_parsers as add_account_parsers

    add_account_parsers(sub)  # user, team, audit

    from engine.notify.commands import add_parsers as add_notify_parsers

    add_notify_parsers(sub)  # channel, oncall, notify

    from engine.analytics.commands import add_parsers as add_analytics_parsers

    add_analytics_parsers(sub)  # export, backtest, report, analytics

    p = sub.add_parser("ui", help="serve the web app (Streamlit)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501)

    p = sub.add_parser("up", help="run api, worker and web app together on the configured store")
    p.add_argument(
        "--demo", action="store_true", help="load 30 days of demo history into an empty store"
    )
    p.add_argument("--api-port", type=int, default=8080)
    p.add_argument("--ui-port", type=int, default=8501)
    p.add_argument("--no-ui", action="store_true", help="run only the api and the worker")

    p = sub.add_parser("demo", help="demo history")
    demosub = p.add_subparsers(dest="demo_command", metavar="ACTION", required=True)
    d = demosub.add_parser("load", help="load demo history into the configured store")
    d.add_argument("--days", type=_positive_int, default=30)
    d.add_argument("--force", action="store_true", help="load even if the store holds alerts")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        status = _COMMANDS[args.command](args)
    except (CliError, SettingsError) as err:
        print(f"klaxon: error: {err}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        status = 130
    except BrokenPipeError:
        status = 0
    raise SystemExit(status)
