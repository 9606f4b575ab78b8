"""Typed reads from a decoded JSON payload that name the path of whatever is wrong."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from engine.schema import EventValidationError, parse_time

ROOT = "$"  # the field named when the body as a whole is wrong
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMERIC = re.compile(r"-?\d+(\.\d+)?")


def join(path: str, key: str | int) -> str:
    """`alerts` + 1 → `alerts[1]`; `alerts[1]` + `labels` → `alerts[1].labels`."""
    if isinstance(key, int):
        return f"{'' if path == ROOT else path}[{key}]"
    return key if path in ("", ROOT) else f"{path}.{key}"


def fail(message: str, path: str, index: int | None = None) -> EventValidationError:
    return EventValidationError(message, field=path, index=index)


@contextmanager
def in_item(index: int) -> Iterator[None]:
    """Errors raised inside say which item of a batch (alerts[i], events[i]) they are about."""
    try:
        yield
    except EventValidationError as err:
        if err.index is not None:
            raise
        raise EventValidationError(err.reason, field=err.field, index=index) from None


def check_text(value: str, path: str) -> str:
    """Refuse text that cannot be stored as UTF-8 (lone surrogates from a lenient JSON parser)."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise fail(f"'{path}' is not valid UTF-8 text", path) from None
    return value


def parse_json(text: str | bytes, path: str) -> Any:
    """Decode JSON text; a UTF-8 byte order mark is tolerated."""
    if isinstance(text, str):
        text = text.removeprefix("\ufeff")
    elif text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    if not text.strip():
        raise fail(f"'{path}' is empty; expected JSON", path)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise fail(f"'{path}' is not valid JSON: {err}", path) from None


def as_object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise fail(f"'{path}' must be a JSON object, got {_kind(value)}", path)
    return value


def opt_object(parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    """The object at `key`; missing, null and "" read as absent."""
    value = parent.get(key)
    if value is None or value == "":
        return None
    return as_object(value, join(path, key))


def opt_list(parent: Mapping[str, Any], key: str, path: str) -> list[Any] | None:
    value = parent.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, list):
        where = join(path, key)
        raise fail(f"'{where}' must be a JSON array, got {_kind(value)}", where)
    return value


def req_list(parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = opt_list(parent, key, path)
    if value is None:
        where = join(path, key)
        raise fail(f"'{where}' is required (a JSON array)", where)
    return value


def opt_text(
    parent: Mapping[str, Any], key: str, path: str, *, numbers: bool = False
) -> str | None:
    """The string at `key` (or a number, written out, when `numbers`); null and "" are absent."""
    value = parent.get(key)
    if value is None or value == "":
        return None
    where = join(path, key)
    if isinstance(value, str):
        return check_text(value, where)
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return scalar_text(value, where)
    wanted = "a string or a number" if numbers else "a string"
    raise fail(f"'{where}' must be {wanted}, got {_kind(value)}", where)


def req_text(parent: Mapping[str, Any], key: str, path: str, *, numbers: bool = False) -> str:
    value = opt_text(parent, key, path, numbers=numbers)
    if value is None:
        where = join(path, key)
        raise fail(f"'{where}' is required", where)
    return value


def opt_number(parent: Mapping[str, Any], key: str, path: str) -> float | None:
    """A number, or a string holding one; null and "" are absent."""
    value = parent.get(key)
    if value is None or value == "":
        return None
    return to_number(value, join(path, key))


def to_number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise fail(f"'{path}' must be a number, got {_kind(value)}", path)
    try:
        return float(value)
    except (ValueError, OverflowError):
        raise fail(f"'{path}' must be a number, got {value!r:.40}", path) from None


def opt_time(parent: Mapping[str, Any], key: str, path: str) -> datetime | None:
    """A time at `key` (RFC 3339, or epoch s/ms/µs/ns as a number or digits); absent → None."""
    value = parent.get(key)
    if value is None or value == "":
        return None
    return to_time(value, join(path, key))


def to_time(value: Any, path: str) -> datetime:
    """RFC 3339 text or an epoch number whose unit is read from its size (s, ms, µs or ns)."""
    if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        text = value.strip()
        try:
            value = float(text) if "." in text else int(text)
        except ValueError:  # more digits than Python will read
            raise fail(f"'{path}' is out of range: {value!r:.40}", path) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch(value, path)
    if not isinstance(value, str):
        raise fail(f"'{path}' must be an RFC 3339 timestamp or epoch number", path)
    try:
        return parse_time(value, path)
    except (ValueError, OverflowError):
        raise fail(f"'{path}' is out of range: {value!r:.40}", path) from None


def _epoch(value: float, path: str) -> datetime:
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(f"'{path}' must be a finite number", path)
    # The unit follows from the size: seconds until the year 5138, then ms, µs and ns
    # (Opsgenie's updatedAt is in ns, past 2^53, so integers stay exact).
    size = abs(value)
    try:
        if isinstance(value, int):
            if size < 10**11:
                micros = value * 1_000_000
            elif size < 10**14:
                micros = value * 1000
            elif size < 10**17:
                micros = value
            else:
                micros = value // 1000
        else:
            factor = 1e6 if size < 1e11 else 1e3 if size < 1e14 else 1.0 if size < 1e17 else 1e-3
            micros = round(value * factor)
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise fail(f"'{path}' is out of range: {value!r:.40}", path) from None


def is_zero_time(value: datetime) -> bool:
    """Go's zero time (`0001-01-01T00:00:00Z`), which Alertmanager and Grafana send for 'unset'."""
    return value.year == 1


def scalar_text(value: Any, path: str) -> str:
    """A JSON value as label text: strings as they are, numbers and booleans written out."""
    if isinstance(value, str):
        return check_text(value, path)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than Python will print
            raise fail(f"'{path}' is too large a number", path) from None
    return compact_json(value, path)


def text_map(value: Any, path: str) -> dict[str, str]:
    """A JSON object of names to scalars (labels, annotations, details) → str to str."""
    obj = as_object(value, path)
    out: dict[str, str] = {}
    for key, item in obj.items():
        name = check_text(str(key), path)
        out[name] = scalar_text(item, join(path, name))
    return out


def opt_text_map(parent: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    value = parent.get(key)
    if value is None or value == "":
        return {}
    return text_map(value, join(path, key))


def text_list(parent: Mapping[str, Any], key: str, path: str) -> list[str]:
    """A list of strings (or numbers), e.g. tags; absent → []."""
    items = opt_list(parent, key, path) or []
    out = []
    for i, item in enumerate(items):
        where = join(join(path, key), i)
        if isinstance(item, dict | list):
            raise fail(f"'{where}' must be a string, got {_kind(item)}", where)
        text = scalar_text(item, where)
        if text:
            out.append(text)
    return out


def compact_json(value: Any, path: str) -> str:
    """Compact JSON text, keys in their original order (the `raw` column)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        pass  # integers past 64 bits, lone surrogates, deep nesting: let json try
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        raise fail(f"'{path}' cannot be written back as JSON", path) from None
    return check_text(text, path)


def canonical_json(value: Any, path: str) -> str:
    """Sorted keys, no spaces: the same object always gives the same text."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        pass
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        raise fail(f"'{path}' cannot be written back as JSON", path) from None
    return check_text(text, path)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A request header, matched without regard to case."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted and isinstance(value, str):
            return value
    return None


def url_host(url: str | None) -> str:
    """`https://pig208.pagerduty.com/incidents/X` → `pig208.pagerduty.com` ("" if not a URL)."""
    if not url:
        return ""
    found = re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]+)", url)
    return found.group(1).lower() if found else ""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
