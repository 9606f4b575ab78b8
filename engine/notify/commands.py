"""`klaxon channel | oncall | notify`: channels, who is on call, and deliveries from the shell.

Like the other admin commands the CLI acts as the system, audited as `klaxon`; URLs are only
ever printed masked.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.auth.principal import SYSTEM
from engine.notify.errors import NotifyError
from engine.notify.transport import KINDS

STATUSES = ("pending", "held", "sending", "sent", "failed", "dead", "suppressed")


def add_parsers(sub: Any) -> None:
    """Register `channel`, `oncall` and `notify` on the `klaxon` subparsers."""
    p = sub.add_parser(
        "channel", help="notification channels (Apprise URLs): add, list, test, delete"
    )
    csub = p.add_subparsers(dest="channel_command", metavar="ACTION", required=True)
    c = csub.add_parser("add", help="add a channel; Apprise checks the URL first")
    c.add_argument("name", help="as rules name it, e.g. slack_platform")
    c.add_argument("url", help="an Apprise URL, e.g. slack://... or mailto://...")
    c.add_argument("--kind", choices=KINDS, help="message style; guessed from the URL")
    c.add_argument("--description", default="")
    c.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="PER_MIN",
        help="messages a minute; the excess is folded into a digest",
    )
    csub.add_parser("list", help="list channels (URLs masked)")
    c = csub.add_parser("test", help="send a test message now and say whether it arrived")
    c.add_argument("name")
    c = csub.add_parser("delete", help="remove a channel")
    c.add_argument("name")

    p = sub.add_parser("oncall", help="who is on call now (or --at an instant) and who is next")
    p.add_argument("schedule", nargs="?", help="one schedule; every schedule by default")
    p.add_argument("--at", metavar="TS", help="an instant with its offset, e.g. 2026-03-29T08:00Z")

    p = sub.add_parser("notify", help="deliveries: list, show one, retry a dead one, run due jobs")
    nsub = p.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    c = nsub.add_parser("list", help="deliveries, newest first")
    c.add_argument("--status", choices=STATUSES, action="append", help="repeat for several")
    c.add_argument("--channel", action="append", help="repeat for several")
    c.add_argument("--alert", type=int, metavar="ID", help="only this alert's deliveries")
    c.add_argument("--limit", type=int, default=20, metavar="N", help="1 to 1000 (20)")
    c = nsub.add_parser("show", help="one delivery: its message and every attempt")
    c.add_argument("id", type=int)
    c = nsub.add_parser("retry", help="send a dead or failed delivery again, now")
    c.add_argument("id", type=int)
    nsub.add_parser(
        "run-once", help="run the scheduler's jobs once: escalations, repeats, deliveries due"
    )


def _database() -> Any:
    from engine.config import settings
    from engine.store.db import Database
    from engine.store.migrate import upgrade

    db = Database(settings().database_url)
    upgrade(db)
    return db


def channel_command(args: argparse.Namespace) -> int:
    from engine.cli import CliError
    from engine.notify import channels
    from engine.notify.deliver import send_test_message

    db = _database()
    try:
        if args.channel_command == "add":
            with db.connect() as conn:
                c = channels.add_channel(
                    conn,
                    SYSTEM,
                    args.name,
                    args.url,
                    kind=args.kind,
                    description=args.description,
                    rate_limit_per_min=args.rate_limit,
                )
            print(f"added channel {c['name']} ({c['kind']}): {c['url']}")
        elif args.channel_command == "list":
            with db.read() as conn:
                rows = channels.list_channels(conn, SYSTEM)
            if not rows:
                print("no channels yet: klaxon channel add NAME URL")
            for c in rows:
                state = "" if c["is_enabled"] else "  (disabled)"
                limit = f"  {c['rate_limit_per_min']}/min" if c["rate_limit_per_min"] else ""
                print(f"{c['name']:<24} {c['kind']:<8} {c['url']}{limit}{state}")
        elif args.channel_command == "test":
            result = send_test_message(db, SYSTEM, args.name)
            if not result["ok"]:
                print(f"klaxon: the test message to {args.name} failed: {result['error']}")
                return 1
            print(f"sent a test message to {args.name} ({result['duration_ms']:.0f} ms)")
        else:
            with db.connect() as conn:
                channels.delete_channel(conn, SYSTEM, args.name)
            print(f"deleted channel {args.name}")
    except NotifyError as err:
        raise CliError(str(err)) from None
    finally:
        db.dispose()
    return 0


def _instant(text: str | None) -> datetime:
    from engine.cli import CliError

    if text is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CliError(f"--at: '{text}' is not an instant; e.g. 2026-03-29T08:00:00Z") from None
    if at.tzinfo is None:
        raise CliError(f"--at: '{text}' has no offset; add Z or +HH:MM")
    return at.astimezone(UTC)


def _local(value: str, tz: str) -> str:
    """An API instant as the schedule's local time, e.g. 2026-03-29 09:00 CEST."""
    at = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(ZoneInfo(tz))
    return at.strftime("%Y-%m-%d %H:%M %Z")


def oncall_command(args: argparse.Namespace) -> int:
    """`klaxon oncall [SCHEDULE] [--at TS]`: now and next per schedule, in its local time."""
    from engine.cli import CliError
    from engine.notify import schedules

    at = _instant(args.at)
    db = _database()
    try:
        with db.read() as conn:
            found = schedules.who_is_on_call(conn, SYSTEM, at, args.schedule)
    except NotifyError as err:
        raise CliError(str(err)) from None
    finally:
        db.dispose()
    if not found:
        print("no on-call schedules yet: create one with POST /api/v1/schedules")
    for s in found:
        now, nxt = s["now"], s["next"]
        print(f"{s['schedule']} ({s['tz']})")
        print(f"  now   {now['user']:<28} until {_local(now['end'], s['tz'])}  ({now['source']})")
        print(
            f"  next  {nxt['user']:<28} from  {_local(nxt['start'], s['tz'])}"
            f" until {_local(nxt['end'], s['tz'])}  ({nxt['source']})"
        )
    return 0


def notify_command(args: argparse.Namespace) -> int:
    """`klaxon notify list | show ID | retry ID | run-once`."""
    from engine.cli import CliError
    from engine.config import settings
    from engine.notify import records
    from engine.scheduler import NotifyScheduler

    db = _database()
    try:
        if args.notify_command == "list":
            with db.read() as conn:
                rows, _ = records.list_notifications(
                    conn,
                    SYSTEM,
                    status=args.status or (),
                    channel=args.channel or (),
                    alert_id=args.alert,
                    limit=args.limit,
                )
            if not rows:
                print("no deliveries match")
            for n in rows:
                error = f"  {n['last_error'][:80]}" if n["last_error"] else ""
                print(
                    f"{n['id']:>7} {n['created_at']}  {n['status']:<10} {n['transition']:<9}"
                    f" {n['channel'] or '-':<20} attempts {n['attempts']}{error}"
                )
        elif args.notify_command == "show":
            with db.read() as conn:
                n = records.get_notification(conn, SYSTEM, args.id)
            print(
                f"notification {n['id']}: {n['status']} ({n['transition']}, alert {n['alert_id']})"
            )
            print(f"  target {n['target']} → channel {n['channel'] or '-'}")
            print(f"  subject {n['subject']}")
            if n["last_error"]:
                print(f"  last error {n['last_error']}")
            for i, a in enumerate(n["attempt_log"], 1):
                outcome = "ok" if a["ok"] else f"failed: {a['error']}"
                print(f"  attempt {i} at {a['at']} ({a['duration_ms']:.0f} ms): {outcome}")
        elif args.notify_command == "retry":
            with db.connect() as conn:
                n = records.retry_notification(conn, SYSTEM, args.id)
            print(f"notification {n['id']} is due again now; the worker sends it within a second")
        else:
            sched = NotifyScheduler(db, settings())
            try:
                done = sched.run_all()
            finally:
                sched.deliverer.close()
            if sched.failures:
                print("klaxon: a scheduler job failed; see the log above")
                return 1
            sent = done["delivered"]
            print(
                f"escalated {done['escalated']} alerts, repeated {done['repeated']}; "
                f"{sent.messages} messages: {sent.sent} rows sent, {sent.failed} failed, "
                f"{sent.dead} dead, {sent.deferred} deferred"
            )
    except NotifyError as err:
        raise CliError(str(err)) from None
    finally:
        db.dispose()
    return 0
