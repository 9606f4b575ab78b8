"""`{{ name }}` templates in titles and label values: parsing, checking and the names they use."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dsl import ast
from dsl.errors import TemplateError
from dsl.fields import EVENT_COLUMNS

_OPEN = "{{"
_CLOSE = "}}"
_REF = re.compile(
    r"""\s*(?:
        labels\.(?P<dotted>[A-Za-z_][A-Za-z0-9_]*)
      | labels\[\s*(?P<q>["'])(?P<indexed>.*?)(?P=q)\s*\]
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )\s*\Z""",
    re.X,
)


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and field references, in order."""

    source: str
    parts: tuple[str | ast.Field, ...]

    @property
    def is_constant(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def names(self) -> list[ast.Field]:
        return [p for p in self.parts if not isinstance(p, str)]


def parse_template(node: ast.String) -> Template:
    """Split a template string into text and references; a broken `{{` is a TemplateError.

    The error points at the `{{` that does not parse, counted from the string's opening quote
    (exact for strings without escapes, which templates nearly always are).
    """
    text = node.value
    parts: list[str | ast.Field] = []
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            if pos < len(text):
                parts.append(text[pos:])
            break
        if start > pos:
            parts.append(text[pos:start])
        end = text.find(_CLOSE, start + 2)
        if end < 0:
            raise _error(node, start, "this '{{' is never closed with '}}'")
        inner = text[start + 2 : end]
        if _OPEN in inner:
            raise _error(node, start, "this '{{' is never closed with '}}'")
        match = _REF.match(inner)
        if match is None:
            if not inner.strip():
                raise _error(node, start, "empty '{{ }}': name a field, e.g. {{ service }}")
            raise _error(
                node,
                start,
                f"'{inner.strip()}' is not a field name; templates take a name, labels.KEY or "
                'labels["KEY"]',
            )
        if match.group("dotted") is not None:
            parts.append(ast.Label(match.group("dotted")))
        elif match.group("indexed") is not None:
            parts.append(ast.Label(match.group("indexed")))
        else:
            name = match.group("name")
            parts.append(ast.Column(name) if name in EVENT_COLUMNS else ast.Name(name))
        pos = end + 2
    return Template(text, tuple(parts))


def _error(node: ast.String, offset: int, message: str) -> TemplateError:
    return TemplateError(message, line=node.span.line, column=node.span.column + 1 + offset)
