"""The Apprise edge: checking a channel URL, masking it, and sending one message to one URL.

Each message goes through an Apprise instance holding one service built for it from the URL, so
every outcome belongs to one notification row (STYLE.md §5). Apprise makes one try; retries are
the deliverer's. A URL is parsed once (`_parsed`) and each thread keeps one Apprise instance,
emptied after each message: a fresh service per message keeps its state (Apprise's throttle)
from leaking into the next one, without parsing the URL or loading locales every time.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import apprise
from apprise.plugins import N_MGR, url_to_dict

from engine.notify.errors import ChannelUrlError

# Apprise loads every plugin on first use, and a few import modules Python deprecates: load them
# now, quietly, so that warning never surfaces as a failed URL check or delivery.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    N_MGR.load_modules()  # type: ignore[no-untyped-call]

KINDS = ("chat", "email", "sms", "webhook", "push")

# Apprise plugin modules by the kind of message that suits them; anything else is "push".
_KIND_OF_MODULE = {
    "email": "email",
    **dict.fromkeys(
        (
            "ses",
            "sendgrid",
            "mailgun",
            "sparkpost",
            "postmark",
            "resend",
            "smtp2go",
            "brevo",
            "mailersend",
            "sendpulse",
            "office365",
            "groundmail",
        ),
        "email",
    ),
    **dict.fromkeys(
        (
            "slack",
            "discord",
            "msteams",
            "mattermost",
            "rocketchat",
            "telegram",
            "matrix",
            "zulip",
            "google_chat",
            "webexteams",
            "flock",
            "ryver",
            "guilded",
            "revolt",
            "lark",
            "feishu",
            "dingtalk",
            "line",
            "cliq",
            "kook",
            "nextcloudtalk",
            "humhub",
            "fluxer",
            "misskey",
            "mastodon",
            "bluesky",
            "wecombot",
            "workflows",
            "twist",
            "pushbullet",
            "signal_api",
        ),
        "chat",
    ),
    **dict.fromkeys(
        (
            "twilio",
            "sns",
            "vonage",
            "clickatell",
            "msg91",
            "bulksms",
            "bulkvs",
            "d7networks",
            "plivo",
            "sinch",
            "kavenegar",
            "seven",
            "smseagle",
            "burstsms",
            "clicksend",
            "messagebird",
            "httpsms",
            "africas_talking",
            "smsmanager",
            "freemobile",
            "textbelt",
            "infobip",
            "exotel",
            "kaleyra",
            "gupshup",
            "octopush",
            "smsc",
            "serwersms",
            "smpp",
            "fortysixelks",
            "mobilemessage",
            "smstunnel",
            "eight00com",
            "cm",
            "notifyre",
        ),
        "sms",
    ),
    **dict.fromkeys(
        ("custom_json", "custom_form", "custom_xml", "mqtt", "apprise_api", "rsyslog", "amqp"),
        "webhook",
    ),
}
_FORMATS = {"email": "html", "chat": "markdown"}  # the rest is plain text
# Apprise runs each service in its shared pool (CPUs + 4 threads) to be able to give up on it
# (`timeout`, and its service timeout of 60 s). Running it in the deliverer's own threads instead
# (service_timeout=0) took less CPU a message but, next to the worker's batch loop in the same
# process, delivered several times slower in bench/notify; so the hand-off stays.
_ASSET = apprise.AppriseAsset(async_mode=False)
_local = threading.local()
_SECRET_PARAM = re.compile(r"(?i)(pass|secret|token|key|auth|sig|cred|session|bearer)")
_WEBHOOK_HINT = "for a plain HTTP endpoint use json://, form:// or xml:// (jsons:// for HTTPS)"


@dataclass(frozen=True)
class CheckedUrl:
    """A URL Apprise accepts: its masked form, the kind of messages that suit it, its service."""

    masked: str
    kind: str
    service: str


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str | None
    duration_ms: float


def format_of(kind: str) -> str:
    return _FORMATS.get(kind, "text")


def notify_type(transition: str, severity: str | None) -> str:
    """Apprise's colour and icon: success when resolved, failure for high and critical."""
    if transition == "resolved":
        return "success"
    if transition in ("fired", "escalated", "repeated"):
        return {"critical": "failure", "high": "failure", "medium": "warning"}.get(
            severity or "", "info"
        )
    return "info"


def _plugin(url: str) -> Any:
    """The Apprise plugin for `url`, or ChannelUrlError saying what is wrong with it."""
    text = url.strip()
    if not text:
        raise ChannelUrlError("url: give an Apprise URL such as json://host/path or mailto://...")
    if "://" not in text:
        raise ChannelUrlError(
            f"url: '{_mask_text(text)}' is not a URL; Apprise URLs look like "
            "scheme://..., e.g. slack://TOKEN_A/TOKEN_B/TOKEN_C"
        )
    scheme = text.split("://", 1)[0].lower()
    try:
        plugin = apprise.Apprise.instantiate(text, suppress_exceptions=False)
    except Exception as err:
        raise ChannelUrlError(f"url: Apprise refuses this {scheme}:// URL: {err}") from None
    if plugin is None:
        if scheme in ("http", "https"):
            raise ChannelUrlError(f"url: Apprise has no {scheme}:// service; {_WEBHOOK_HINT}")
        raise ChannelUrlError(
            f"url: '{scheme}://' is not a service Apprise supports here "
            "(see https://appriseit.com/services/)"
        )
    return plugin


def check_url(url: str) -> CheckedUrl:
    """Validate with Apprise; return the masked form and kind. Raises ChannelUrlError."""
    plugin = _plugin(url)
    module = type(plugin).__module__.split(".")
    name = "email" if "email" in module else module[-1]
    return CheckedUrl(
        masked=mask_url(url, plugin),
        kind=_KIND_OF_MODULE.get(name, "push"),
        service=str(getattr(plugin, "service_name", name)),
    )


def mask_url(url: str, plugin: Any | None = None) -> str:
    """The URL with passwords, tokens and header values replaced by ****, for display and logs.

    Apprise's privacy form masks what each service knows to be secret (tokens in the path of a
    Slack URL, passwords); its default parameters are dropped, and any parameter or `+header`
    whose name looks secret is masked as well.
    """
    if plugin is None:
        try:
            plugin = _plugin(url)
        except ChannelUrlError:
            return _mask_text(url)
    private = str(plugin.url(privacy=True))
    given = {k.lstrip("+-:").lower() for k, _ in _params(urlsplit(url.strip()).query)}
    parts = urlsplit(private)
    kept = []
    for key, value in _params(parts.query):
        bare = key.lstrip("+-:").lower()
        if bare not in given:
            continue
        if key.startswith("+") or _SECRET_PARAM.search(bare):
            value = "****"
        kept.append((key, value))
    query = urlencode(kept, quote_via=quote, safe="*@+")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _params(query: str) -> list[tuple[str, str]]:
    """Query parameters with `+` kept as a character: Apprise's `+Header=value` syntax."""
    return parse_qsl(query.replace("+", "%2B"), keep_blank_values=True)


def _mask_text(text: str) -> str:
    """A best effort for text Apprise cannot parse: hide anything after user: and every query."""
    text = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1****@", text)
    return text.split("?", 1)[0] + ("?****" if "?" in text else "")


def send(
    url: str,
    title: str,
    body: str,
    *,
    kind: str,
    attachments: list[Path] | None = None,
    body_format: str | None = None,
    notify_type: str = "info",
    timeout: float = 30.0,
) -> Outcome:
    """Send one message to one URL, once. Never raises: a failure is an Outcome with its error."""
    started = time.perf_counter()
    instance = _instance()
    try:
        service = _service(url)
        if service is None:
            return Outcome(False, "Apprise no longer accepts this channel's URL", _ms(started))
        instance.add(service)
        attach = [str(p) for p in attachments] if attachments else None
        result = instance.notify(
            body=body or " ",
            title=title,
            body_format=body_format or format_of(kind),
            notify_type=notify_type,
            attach=attach,
            timeout=timeout,
        )
    except Exception as err:
        return Outcome(False, f"{type(err).__name__}: {err}", _ms(started))
    finally:
        instance.clear()
    if result:
        return Outcome(True, None, _ms(started))
    return Outcome(False, _error_of(result), _ms(started))


def _instance() -> apprise.Apprise:
    """This thread's Apprise instance (empty between messages)."""
    found: apprise.Apprise | None = getattr(_local, "apprise", None)
    if found is None:
        found = _local.apprise = apprise.Apprise(asset=_ASSET)
    return found


@lru_cache(maxsize=256)
def _parsed(url: str) -> dict[str, Any] | None:
    """Apprise's reading of a URL (its tokens), once per URL; None if it cannot read it."""
    found = url_to_dict(url, secure_logging=_ASSET.secure_logging)  # type: ignore[no-untyped-call]
    return dict(found) if found is not None else None


def _service(url: str) -> Any | None:
    """A new Apprise service for `url` (None if Apprise refuses it), from the parsed tokens."""
    parsed = _parsed(url)
    if parsed is None:
        return None
    # A copy: the plugin may keep or change what it is given, and the cached tokens are shared.
    return apprise.Apprise.instantiate(copy.deepcopy(parsed), asset=_ASSET)


def _error_of(result: Any) -> str:
    messages: list[str] = []
    for service in result.results:
        for entry in service.logs():
            if entry.level in ("WARNING", "ERROR", "CRITICAL") and entry.message not in messages:
                messages.append(entry.message)
    status = getattr(result.status, "name", str(result.status)).lower()
    text = "; ".join(messages[:4]) or f"Apprise reported {status} without a reason"
    return text[:2000]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
