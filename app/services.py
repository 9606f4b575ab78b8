"""The web app's handles on the engine: the cached Database, the actor, guarded service calls.

Pages never open connections themselves: `read(fn, ...)` runs an engine service in a read
connection, `write(fn, ...)` in a write transaction (then clears the cached query results),
`cached(fn, ...)` memoizes a read for a few seconds. Whatever goes wrong becomes a message on
the page (`attempt`), never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st

from app import state
from dsl.errors import DslError
from engine.auth.errors import AuthError
from engine.auth.principal import PermissionDenied, Principal
from engine.config import settings
from engine.errors import EngineError
from engine.store.db import Database

if TYPE_CHECKING:
    from engine.analytics.warehouse import Warehouse

T = TypeVar("T")
CACHE_TTL_S = 10
log = logging.getLogger("klaxon.ui")


class NotSignedIn(EngineError):
    """A page asked for the actor while nobody is signed in."""


@st.cache_resource(show_spinner=False)
def _database(url: str) -> Database:
    return Database(url)


def database() -> Database:
    """The store of KLAXON_DATABASE_URL, one handle per process (thread-safe engine)."""
    return _database(settings().database_url)


def actor() -> Principal:
    principal = state.PRINCIPAL.get()
    if principal is None:
        raise NotSignedIn("you are not signed in")
    return principal


def can(permission: str) -> bool:
    principal = state.PRINCIPAL.get()
    return principal is not None and principal.can(permission)


# ---------------------------------------------------------------- calling services


def read(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(conn, actor, *args, **kwargs)` in a read connection."""
    with database().read() as conn:
        return fn(conn, actor(), *args, **kwargs)


def write(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(conn, actor, *args, **kwargs)` in one write transaction; cached reads are dropped."""
    with database().connect() as conn:
        result = fn(conn, actor(), *args, **kwargs)
    changed()
    return result


def with_db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(db, actor, *args, **kwargs)`, for services that open their own transactions."""
    return fn(database(), actor(), *args, **kwargs)


def changed() -> None:
    """Something was written: every cached query result may be stale."""
    st.cache_data.clear()


def warehouse() -> Warehouse:
    """The analytics warehouse (DuckDB over Parquet snapshots) of this store."""
    from engine.analytics.warehouse import warehouse as make

    return make(database(), settings().data_dir)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=500)
def _cached(
    url: str,
    who: str,
    name: str,
    key: str,
    uses: str,
    _fn: Any,
    _actor: Principal,
    _args: Any,
    _kw: Any,
) -> Any:
    if uses == "warehouse":
        return _fn(warehouse(), *_args, **_kw)
    if uses == "db":
        return _fn(_database(url), _actor, *_args, **_kw)
    with _database(url).read() as conn:
        return _fn(conn, _actor, *_args, **_kw)


def _identity(who: Principal) -> str:
    return f"{who.kind}:{who.name}:{who.role}:{','.join(sorted(who.permissions))}"


def cached(fn: Callable[..., T], *args: Any, uses: str = "conn", **kwargs: Any) -> T:
    """A read memoized for CACHE_TTL_S seconds per store, user and arguments.

    `uses` says what `fn` takes first: "conn" (a read connection, then the actor), "db" (the
    Database, then the actor) or "warehouse" (analytics: the warehouse only; the caller checks
    analytics.read, which `analytics` below does).
    """
    who = actor()
    name = f"{fn.__module__}.{fn.__qualname__}"
    key = repr((args, sorted(kwargs.items())))
    result: T = _cached(
        settings().database_url, _identity(who), name, key, uses, fn, who, args, kwargs
    )
    return result


def analytics(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """An engine.analytics question `fn(warehouse, ...)`, for users with analytics.read."""
    actor().require("analytics.read")
    return cached(fn, *args, uses="warehouse", **kwargs)


def report_pdf(filters: Any) -> bytes:
    """The PDF report of `filters`' period (engine.analytics.report), for analytics.read."""
    from engine.analytics.report import build_report

    actor().require("analytics.read")
    return build_report(database(), warehouse(), filters)


# ---------------------------------------------------------------- errors as messages


def explain(err: BaseException) -> str:
    """What went wrong, in words for the page (the log keeps the traceback)."""
    if isinstance(err, PermissionDenied | AuthError | EngineError | DslError | ValueError):
        return str(err)
    module = type(err).__module__
    if module.startswith(("sqlalchemy", "sqlite3", "psycopg")):
        return (
            "the store did not answer as expected; "
            "check KLAXON_DATABASE_URL and that the store is migrated (klaxon db upgrade)"
        )
    return f"an unexpected {type(err).__name__} (details are in the server log)"


def _report(what: str, err: BaseException) -> None:
    if isinstance(err, PermissionDenied):
        st.warning(f"Could not {what}: {err}", icon="🔒")
        return
    if not isinstance(err, EngineError | DslError | AuthError):
        log.error("web app: could not %s", what, exc_info=err)
    st.error(f"Could not {what}: {explain(err)}", icon="⚠️")


def attempt(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call `fn`; on failure show "Could not <what>: <why>" and return None."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # every failure becomes a message, never a traceback
        _report(what, err)
    return None


def succeeded(what: str, fn: Callable[..., object], *args: Any, **kwargs: Any) -> bool:
    """Call `fn` for its effect; False (and the message shown) if it failed."""
    try:
        fn(*args, **kwargs)
    except Exception as err:  # every failure becomes a message, never a traceback
        _report(what, err)
        return False
    return True


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """A block whose failure is shown as a message; the rest of the page still renders."""
    try:
        yield
    except Exception as err:  # every failure becomes a message, never a traceback
        _report(what, err)


def need(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Like `attempt`, but a page that cannot go on without the result stops here."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # every failure becomes a message, never a traceback
        _report(what, err)
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


# ---------------------------------------------------------------- notification settings


def notify_teams() -> list[str]:
    """The teams' names, for the notification settings (teams.read)."""
    from engine.auth.teams import list_teams

    return [t["name"] for t in with_db(list_teams)]


def notify_users() -> list[str]:
    """Whose notification settings this user may open: everyone with users.read, else self."""
    from engine.auth.users import UserQuery, list_users

    if not can("users.read"):
        return [actor().name]
    return sorted(u["email"] for u in with_db(list_users, UserQuery(limit=1000)))


def team_notify_settings(team: str) -> dict[str, Any]:
    """A team's default channels, fallback channel, escalation policy and quiet hours."""
    from engine.notify.people import get_team_notify

    return read(get_team_notify, team)


def save_team_notify_settings(team: str, **changes: Any) -> dict[str, Any]:
    """Change a team's notification settings (teams.write); errors name the field."""
    from engine.notify.people import set_team_notify

    return write(set_team_notify, team, **changes)


def user_notify_settings(email: str) -> dict[str, Any]:
    """A user's contact channels, time zone and quiet hours (their own, or users.read)."""
    from engine.notify.people import get_user_notify

    return read(get_user_notify, email)


def save_user_notify_settings(email: str, **changes: Any) -> dict[str, Any]:
    """Change a user's notification settings (their own, or users.write)."""
    from engine.notify.people import set_user_notify

    return write(set_user_notify, email, **changes)
