"""`klaxon channel ...`: add, list, test and remove channels from the shell.

Like the other admin commands the CLI acts as the system, audited as `klaxon`; URLs are only
ever printed masked.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine.auth.principal import SYSTEM
from engine.notify.errors import NotifyError
from engine.notify.transport import KINDS


def add_parsers(sub: Any) -> None:
    """Register `channel` on the `klaxon` subparsers."""
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


def channel_command(args: argparse.Namespace) -> int:
    from engine.cli import CliError
    from engine.config import settings
    from engine.notify import channels
    from engine.notify.deliver import send_test_message
    from engine.store.db import Database
    from engine.store.migrate import upgrade

    db = Database(settings().database_url)
    upgrade(db)
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
