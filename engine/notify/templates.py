"""Message templates per channel kind: email HTML, chat markdown, SMS short text, webhook, push.

Jinja2 (sandboxed) over an alert's fields. A missing field renders empty, and a template that
still fails falls back to a one-line message: a notification is never lost to a template.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

log = logging.getLogger("klaxon.notify")

WORDS = {
    "fired": "FIRING",
    "resolved": "RESOLVED",
    "escalated": "ESCALATED",
    "repeated": "STILL FIRING",
    "test": "TEST",
    "report": "REPORT",
}
# How many alerts a grouped message lists by name before "…and N more".
LIST_LIMIT = {"email": 1000, "webhook": 1000, "chat": 200, "push": 20, "sms": 0}
SMS_LENGTH = 160

_FIELDS = ("service", "environment", "host", "team")

_TITLE = (
    "{{ word }}{% if level %} (level {{ level }}){% endif %}"
    "{% if alert.severity %} [{{ alert.severity | upper }}]{% endif %} "
    "{{ alert.title or alert.rule or 'alert' }}"
)
_LINES = """\
{% for name in fields if alert[name] %}{{ name }}: {{ alert[name] }}
{% endfor %}{% if alert.value is number %}value: {{ alert.value }}
{% endif %}{% for k, v in alert.labels | pairs %}{{ k }}: {{ v }}
{% endfor %}rule {{ alert.rule }} · alert #{{ alert.id }}"""

_ONE = {
    "chat": """\
**{{ word }}**{% if level %} (level {{ level }}){% endif %} · {{ alert.severity }} · \
{{ alert.title or alert.rule }}
{% if alert.description %}{{ alert.description }}
{% endif %}{% for name in fields if alert[name] %}- {{ name }}: `{{ alert[name] }}`
{% endfor %}{% if alert.value is number %}- value: {{ alert.value }}
{% endif %}{% for k, v in alert.labels | pairs %}- {{ k }}: {{ v }}
{% endfor %}rule `{{ alert.rule }}` · alert #{{ alert.id }}""",
    "email": """\
{% macro row(k, v) %}<tr><th align="left">{{ k }}</th><td>{{ v }}</td></tr>
{% endmacro %}\
<h2 style="margin:0 0 8px">{{ word }}{% if level %} (level {{ level }}){% endif %}: \
{{ alert.title or alert.rule }}</h2>
<p><b>Severity:</b> {{ alert.severity }}\
{% if alert.team %} · <b>Team:</b> {{ alert.team }}{% endif %}</p>
{% if alert.description %}<p>{{ alert.description }}</p>{% endif %}
<table cellpadding="4" style="border-collapse:collapse">
{% for name in fields if alert[name] %}{{ row(name, alert[name]) }}{% endfor %}\
{% if alert.value is number %}{{ row("value", alert.value) }}{% endif %}\
{% for k, v in alert.labels | pairs %}{{ row(k, v) }}{% endfor %}</table>
<p style="color:#666">rule {{ alert.rule }} · alert #{{ alert.id }}</p>""",
    "sms": "{{ word }} {{ alert.severity | upper }} {{ alert.title or alert.rule }}"
    "{% if alert.service %} ({{ alert.service }}){% endif %} #{{ alert.id }}",
    "webhook": "{{ word }} [{{ alert.severity }}] {{ alert.title or alert.rule }}\n"
    "{% if alert.description %}{{ alert.description }}\n{% endif %}" + _LINES,
    "push": "{{ alert.severity }}{% for name in fields if alert[name] %} · {{ alert[name] }}"
    "{% endfor %} · #{{ alert.id }}",
}

_MANY_TITLE = (
    "{{ heading }}: {{ firing | length }} firing"
    "{% if resolved %}, {{ resolved | length }} resolved{% endif %}"
)
_ITEM = (
    "[{{ it.alert.severity | upper }}] {{ it.alert.title or it.alert.rule }}"
    "{% if it.alert.service %} ({{ it.alert.service }}){% endif %} #{{ it.alert.id }}"
)
_SECTION = (
    "{% for section, rows in (('Firing', firing), ('Resolved', resolved)) if rows %}"
    "{{ open_ }}{{ section }} ({{ rows | length }}){{ close_ }}\n"
    "{% for it in rows[:limit] %}{{ bullet }}" + _ITEM + "\n{% endfor %}"
    "{% if rows | length > limit %}…and {{ rows | length - limit }} more\n{% endif %}"
    "{% endfor %}"
)
_MANY = {
    "chat": "{% set open_, close_, bullet = '**', '**', '- ' %}" + _SECTION,
    "webhook": "{% set open_, close_, bullet = '', '', '- ' %}" + _SECTION,
    "push": "{% set open_, close_, bullet = '', '', '' %}" + _SECTION,
    "email": """\
<h2 style="margin:0 0 8px">{{ heading }}</h2>
{% for section, rows in (('Firing', firing), ('Resolved', resolved)) if rows %}
<h3>{{ section }} ({{ rows | length }})</h3><ul>
{% for it in rows[:limit] %}<li>"""
    + _ITEM
    + """</li>
{% endfor %}</ul>\
{% if rows | length > limit %}<p>…and {{ rows | length - limit }} more</p>{% endif %}
{% endfor %}""",
    "sms": "{{ heading }}: {{ firing | length }} firing"
    "{% if resolved %}, {{ resolved | length }} resolved{% endif %}",
}

_text_env = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
_html_env = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=True)


def _pairs(value: Any) -> list[tuple[Any, Any]]:
    """A mapping's items, sorted; anything else (missing, a string) has none."""
    return sorted(value.items(), key=lambda kv: str(kv[0])) if isinstance(value, dict) else []


for _e in (_text_env, _html_env):
    _e.filters["pairs"] = _pairs


def _env(kind: str) -> SandboxedEnvironment:
    return _html_env if kind == "email" else _text_env


@lru_cache(maxsize=64)
def _template(kind: str, source: str) -> Template:
    return _env(kind).from_string(source)


def _render(kind: str, source: str, context: dict[str, Any]) -> str:
    return _template(kind, source).render(**context).strip()


def render_one(
    kind: str, transition: str, alert: dict[str, Any], *, level: int | None = None
) -> tuple[str, str]:
    """(title, body) of a message about one alert."""
    kind = kind if kind in _ONE else "webhook"
    context = {
        "word": WORDS.get(transition, transition.upper()),
        "alert": alert or {},
        "level": level,
        "fields": _FIELDS,
    }
    try:
        title = _render("text", _TITLE, context)
        body = _render(kind, _ONE[kind], context)
    except Exception:
        log.warning("template for a %s message failed; sending a plain one", kind, exc_info=True)
        title = f"{context['word']} {alert.get('title') or alert.get('rule') or 'alert'}"
        body = f"{title} (alert #{alert.get('id')})"
    if kind == "sms":
        return "", _shorten(body)
    return title, body


def render_many(kind: str, heading: str, items: list[dict[str, Any]]) -> tuple[str, str]:
    """(title, body) of a grouped message or a digest: items are {"transition", "alert"}."""
    kind = kind if kind in _MANY else "webhook"
    firing = [i for i in items if i.get("transition") != "resolved"]
    resolved = [i for i in items if i.get("transition") == "resolved"]
    context = {
        "heading": heading,
        "firing": firing,
        "resolved": resolved,
        "limit": LIST_LIMIT.get(kind, 100),
    }
    try:
        title = _render("text", _MANY_TITLE, context)
        body = _render(kind, _MANY[kind], context)
    except Exception:
        log.warning(
            "template for a grouped %s message failed; sending a plain one", kind, exc_info=True
        )
        title = f"{heading}: {len(firing)} firing, {len(resolved)} resolved"
        body = title
    if kind == "sms":
        return "", _shorten(body)
    return title, body


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SMS_LENGTH else text[: SMS_LENGTH - 1] + "…"
