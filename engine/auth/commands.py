"""`klaxon user ...`, `klaxon team ...` and `klaxon audit ...`: accounts, teams and the audit
trail from the shell.

The CLI acts with every permission (whoever can run it on the server already holds the store),
and its changes are audited under the actor `cli:OS-USER` with the user agent `klaxon cli`.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

import orjson

from engine.auth.errors import AuthError
from engine.auth.principal import ROLES, Principal


def add_parsers(sub: Any) -> None:
    """Register `user`, `team` and `audit` on the `klaxon` subparsers."""
    p = sub.add_parser("user", help="accounts: add, list, unlock, export, erase")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    u = usub.add_parser("add", help="create a user (the password from stdin, or one is made up)")
    u.add_argument("--email", required=True)
    u.add_argument("--role", required=True, choices=ROLES)
    u.add_argument("--name", default="")
    u.add_argument("--team", action="append", default=[], metavar="TEAM", help="repeatable")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    usub.add_parser("list", help="list users")
    u = usub.add_parser("set", help="change a user's role, name or active flag")
    u.add_argument("email")
    u.add_argument("--role", choices=ROLES)
    u.add_argument("--name")
    active = u.add_mutually_exclusive_group()
    active.add_argument("--active", dest="is_active", action="store_true", default=None)
    active.add_argument(
        "--inactive", dest="is_active", action="store_false", help="also ends their sessions"
    )
    for name, text in (
        ("unlock", "clear failed logins and the lockout"),
        ("export", "print everything Klaxon holds about a user (JSON)"),
        ("erase", "pseudonymize a user everywhere (cannot be undone)"),
    ):
        u = usub.add_parser(name, help=text)
        u.add_argument("email")
        if name == "erase":
            u.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = sub.add_parser("team", help="teams: add, list")
    tsub = p.add_subparsers(dest="team_command", metavar="ACTION", required=True)
    t = tsub.add_parser("add", help="create a team")
    t.add_argument("name")
    t.add_argument("--member", action="append", default=[], metavar="EMAIL", help="repeatable")
    t.add_argument("--require-mfa", action="store_true", help="its members must use MFA")
    tsub.add_parser("list", help="list teams and their members")

    p = sub.add_parser("audit", help="the audit trail: verify the hash chain, export")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    asub.add_parser("verify", help="check the chain; exit 1 naming the first broken entry")
    a = asub.add_parser("export", help="write every entry as CSV or JSON")
    a.add_argument("--format", choices=("csv", "json"), default="json")
    a.add_argument("--output", required=True, metavar="PATH", help="a file, or - for stdout")


def cli_actor() -> Principal:
    """Who the audit trail names for a change made from the shell."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        who = "unknown"
    return Principal(f"cli:{who}"[:256], kind="system", user_agent="klaxon cli")


def _database() -> Any:
    from engine.config import settings
    from engine.store.db import Database

    return Database(settings().database_url)


def _fail(message: str) -> Exception:
    from engine.cli import CliError

    return CliError(message)


def _user_id(db: Any, email: str) -> int:
    from engine.auth.users import find_user

    with db.read() as conn:
        user = find_user(conn, email)
    if user is None:
        raise _fail(f"no user with email {email}")
    return int(user.id)


def user_command(args: argparse.Namespace) -> int:
    db = _database()
    try:
        return _user_command(db, args)
    finally:
        db.dispose()


def _user_command(db: Any, args: argparse.Namespace) -> int:
    from engine.auth import privacy, users

    try:
        if args.user_command == "add":
            return _add(db, args)
        if args.user_command == "list":
            for u in users.list_users(db, cli_actor(), users.UserQuery(limit=1000)):
                state = _state(u)
                mfa = "mfa" if u["mfa_enabled"] else "-"
                teams = ",".join(u["teams"])
                print(f"{u['id']:>4}  {u['email']:<32} {u['role']:<9} {mfa:<4} {state:<8} {teams}")
            return 0
        user_id = _user_id(db, args.email)
        if args.user_command == "set":
            if args.role is None and args.name is None and args.is_active is None:
                raise _fail("say what to change: --role, --name, --active or --inactive")
            u = users.update_user(
                db, cli_actor(), user_id, name=args.name, role=args.role, is_active=args.is_active
            )
            state = _state(u)
            print(f"{u['email']}: {u['role']}, {state}" + (f", {u['name']}" if u["name"] else ""))
        elif args.user_command == "unlock":
            users.unlock_user(db, cli_actor(), user_id)
            print(f"unlocked {args.email}")
        elif args.user_command == "export":
            sys.stdout.write(
                orjson.dumps(
                    privacy.export_user(db, cli_actor(), user_id), option=orjson.OPT_INDENT_2
                ).decode()
                + "\n"
            )
        else:
            if not args.yes and not _confirm(
                f"erase {args.email} everywhere? this cannot be undone [y/N] "
            ):
                raise _fail("not erased")
            done = privacy.erase_user(db, cli_actor(), user_id)
            print(
                f"erased {args.email}: now {done['pseudonym']} (audit entry {done['audit_entry']})"
            )
        return 0
    except AuthError as err:
        raise _fail(f"{err.field}: {err}" if err.field else str(err)) from None


def _state(user: dict[str, Any]) -> str:
    if user["erased_at"]:
        return "erased"
    if user["is_locked"]:
        return "locked"
    return "active" if user["is_active"] else "inactive"


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise _fail("pass --yes to erase without a terminal to confirm on")
    return input(question).strip().lower() in ("y", "yes")


def _add(db: Any, args: argparse.Namespace) -> int:
    import secrets

    from engine.auth.users import create_user

    made_up = not args.password_stdin
    if made_up:
        password = secrets.token_urlsafe(15)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _fail("no password on stdin")
    user = create_user(
        db,
        email=args.email,
        role=args.role,
        password=password,
        name=args.name,
        teams=args.team,
        actor=cli_actor(),
    )
    print(f"created user {user['email']} ({user['role']}), id {user['id']}")
    if made_up:
        print(f"password (shown once): {password}")
    return 0


def team_command(args: argparse.Namespace) -> int:
    from engine.auth import teams

    db = _database()
    try:
        if args.team_command == "add":
            team = teams.create_team(
                db, cli_actor(), name=args.name, require_mfa=args.require_mfa, members=args.member
            )
            mfa = ", MFA required" if team["require_mfa"] else ""
            print(f"created team {team['name']} with {len(team['members'])} members{mfa}")
            return 0
        for team in teams.list_teams(db, cli_actor(), teams.TeamQuery(limit=1000)):
            mfa = "mfa" if team["require_mfa"] else "-"
            members = ",".join(m["email"] for m in team["members"])
            print(f"{team['id']:>4}  {team['name']:<24} {mfa:<4} {members}")
        return 0
    except AuthError as err:
        raise _fail(f"{err.field}: {err}" if err.field else str(err)) from None
    finally:
        db.dispose()


def audit_command(args: argparse.Namespace) -> int:
    db = _database()
    try:
        return _audit_command(db, args)
    finally:
        db.dispose()


def _audit_command(db: Any, args: argparse.Namespace) -> int:
    from engine.auth import audit
    from engine.auth.audit_search import export

    if args.audit_command == "verify":
        result = audit.verify(db)
        if result.ok:
            print(f"ok: {result.checked} entries, the chain holds; head {result.head}")
            return 0
        print(f"entry {result.broken_id} is broken: {result.reason}", file=sys.stderr)
        print(f"({result.checked} entries before it hold)", file=sys.stderr)
        return 1
    chunks = export(db, cli_actor(), args.format)
    if args.output == "-":
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        return 0
    path = Path(args.output)
    try:
        with path.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
    except OSError as err:
        raise _fail(f"cannot write {path}: {err.strerror}") from None
    print(f"wrote the audit log to {path}")
    return 0
