"""Demo accounts for `klaxon up --demo`: one user of each role.

The passwords are derived from the secret key (KLAXON_SECRET_KEY or data/secret.key), so
every run prints the same working credentials without storing them anywhere, and another
installation's demo passwords are not guessable.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac

from engine.auth.errors import ConflictError
from engine.auth.passwords import verify_password
from engine.auth.principal import ROLES, SYSTEM
from engine.auth.users import create_user, find_user
from engine.crypto import signing_key
from engine.store.db import Database

DEMO_DOMAIN = "example.com"
DEMO_NAMES = {
    "admin": "Ada Admin",
    "manager": "Max Manager",
    "operator": "Olga Operator",
    "viewer": "Vic Viewer",
}


def demo_password(role: str) -> str:
    digest = hmac.new(
        signing_key(), f"klaxon demo password {role}".encode(), hashlib.sha256
    ).digest()
    return "demo-" + base64.b32encode(digest[:10]).decode().lower()


def create_demo_users(db: Database, *, password: str | None = None) -> list[tuple[str, str, str]]:
    """Create the missing demo users; returns (email, role, password) of every demo user whose
    password still is the demo one (a user who changed it is left out)."""
    out = []
    for role in ROLES:
        email = f"{role}@{DEMO_DOMAIN}"
        secret = password or demo_password(role)
        with db.read() as conn:
            user = find_user(conn, email)
        if user is None:
            with contextlib.suppress(ConflictError):  # made meanwhile by another process
                create_user(
                    db, email=email, role=role, password=secret, name=DEMO_NAMES[role], actor=SYSTEM
                )
        elif not verify_password(user.password_hash, secret)[0]:
            continue
        out.append((email, role, secret))
    return out
