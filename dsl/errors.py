"""The rule language's errors: each knows its file, line, column and source line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class DslError(Exception):
    """An error in a rules file, rendered as DSL.md §6 says.

    ``str(err)`` is ``path:line:col: error: message``, the source line verbatim and a
    caret under the column; ``to_dict()`` carries the same fields for the API and the editor.
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        line: int = 1,
        column: int = 1,
        path: str = "<rules>",
        source_line: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.path = path
        self.source_line = source_line
        self.hint = hint

    def located(self, path: str, text: str) -> DslError:
        """Fill in the path and the source line from the file's text."""
        self.path = path
        # Lines as the parser counts them: "\n" only; splitlines also cuts at \f, \u2028 and more.
        lines = text.split("\n")
        self.source_line = lines[self.line - 1].rstrip("\r") if 0 < self.line <= len(lines) else ""
        return self

    @property
    def full_message(self) -> str:
        return f"{self.message} (did you mean {self.hint}?)" if self.hint else self.message

    def __str__(self) -> str:
        head = f"{self.path}:{self.line}:{self.column}: error: {self.full_message}"
        if not self.source_line and self.line <= 0:
            return head
        # Tabs keep their width so the caret lands under the right character.
        prefix = "".join(c if c == "\t" else " " for c in self.source_line[: self.column - 1])
        return f"{head}\n{self.source_line}\n{prefix}^"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "message": self.full_message,
            "hint": self.hint,
            "source_line": self.source_line,
            "kind": type(self).__name__,
            "text": str(self),
        }


class RuleSyntaxError(DslError):
    """The text does not follow the grammar."""


class RuleSemanticError(DslError):
    """The text parses but means something impossible."""


class UnknownSeverityError(RuleSemanticError):
    """A severity name that is not info, low, medium, high or critical."""


class DuplicateIdError(RuleSemanticError):
    """Two blocks with the same id."""


class ConflictingClauseError(RuleSemanticError):
    """A clause that repeats or contradicts an earlier one in the same block."""


class UnknownFunctionError(RuleSemanticError):
    """A call of a function that does not exist, or with the wrong number of arguments."""


class BadRegexError(RuleSemanticError):
    """A regular expression that does not compile."""


class TemplateError(RuleSemanticError):
    """A ``{{ }}`` template that does not parse."""


class TypeMismatchError(RuleSemanticError):
    """An operator applied to values it cannot take (a number compared with a string)."""


class BadScheduleError(RuleSemanticError):
    """A silence's time window that cannot be: bad day, hour or time zone."""


class DslErrors(DslError):
    """Several errors at once, in file order; ``str()`` prints them all."""

    def __init__(self, errors: Iterable[DslError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.path, e.line, e.column))
        first = self.errors[0] if self.errors else DslError("no errors")
        super().__init__(
            first.message,
            line=first.line,
            column=first.column,
            path=first.path,
            source_line=first.source_line,
            hint=first.hint,
        )

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)

    def to_dict(self) -> dict[str, Any]:
        return {"errors": [e.to_dict() for e in self.errors]}
