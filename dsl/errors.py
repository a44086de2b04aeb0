"""Policy diagnostics: a stable code, a location, a one-line message and the offending line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .ast import Span


class ExtensionMissing(ImportError):
    """A compiled module is not built; Layergate never falls back to Python silently."""


# Every code the parser, validator and loader can produce. Tests check codes, not wording.
CODES = {
    # reading files
    "file_not_found": "a policy or data file does not exist",
    "file_unreadable": "a file could not be read or decoded as UTF-8",
    "invalid_data": "a data file is not valid JSON/YAML or not an object of documents",
    # syntax
    "unexpected_character": "a character that cannot start any token",
    "unexpected_token": "a token the grammar does not allow here",
    "unexpected_end": "the file ends in the middle of a declaration",
    "single_equals": "`=` used for comparison; write `==`",
    "c_style_operator": "`&&`, `||` or `!` used; write `and`, `or`, `not`",
    "expression_too_deep": "conditions nested deeper than the parser allows",
    # declarations
    "no_layers": "the policy declares no layer",
    "duplicate_layer": "two layers share a name",
    "duplicate_rule": "two rules in one layer share an explicit name",
    "duplicate_role": "two roles share a name",
    "duplicate_const": "two constants share a name",
    "duplicate_order": "more than one `layers [...]` declaration",
    "unknown_layer": "`layers [...]` names a layer that is not declared",
    "unordered_layer": "a layer is missing from `layers [...]`, or layers span files with no order",
    "unknown_role": "a role extends, or a data role binding names, a role that is not declared",
    "role_cycle": "role inheritance loops back on itself",
    # conditions
    "unknown_name": "a name that is neither a constant nor a known root",
    "unknown_function": "a call to a function that does not exist",
    "wrong_arity": "a function called with the wrong number of arguments",
    "type_mismatch": "an operation on values of a type it does not accept",
    "invalid_literal": "a literal with no valid value: a bad CIDR, timestamp or pattern, a "
                       "number out of range or an integer a double does not hold exactly, a "
                       "string with a raw control character or half a surrogate pair",
    "unknown_attribute": "a path into a request entity that the request model does not have",
    "unknown_document": "a `data.<name>` path names a document the data does not hold",
    # compiling
    "index_too_large": "a layer names too many actions x resource types to index",
    # serving
    "load_failed": "a reload failed in the loader itself (a fault, logged with its traceback)",
}


@dataclass(frozen=True)
class Diagnostic:
    """One error in a policy or its data, with where it is."""

    code: str
    message: str
    span: Span
    source_line: str = ""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code `{self.code}`")

    @property
    def location(self) -> str:
        if self.span.line <= 0:
            return self.span.file
        return f"{self.span.file}:{self.span.line}:{self.span.column}"

    def format(self, *, with_source: bool = True) -> str:
        head = f"{self.location}: {self.code}: {self.message}"
        if not with_source or not self.source_line:
            return head
        caret = " " * max(self.span.column - 1, 0) + "^"
        return f"{head}\n    {self.source_line}\n    {caret}"

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
        }


class PolicyError(Exception):
    """Raised with every diagnostic found; nothing from a policy that raised is used."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(dict.fromkeys(diagnostics), key=_order))
        super().__init__(self.format(with_source=False))

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.diagnostics]

    def format(self, *, with_source: bool = True) -> str:
        return "\n".join(d.format(with_source=with_source) for d in self.diagnostics)


def _order(diagnostic: Diagnostic) -> tuple[str, int, int]:
    return (diagnostic.span.file, diagnostic.span.line, diagnostic.span.column)


class SourceLines:
    """Looks up the text of a line for diagnostics, per file."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def add(self, name: str, text: str) -> None:
        self._lines[name] = text.splitlines()

    def count(self, name: str) -> int:
        return len(self._lines.get(name, []))

    def line(self, span: Span) -> str:
        lines = self._lines.get(span.file, [])
        if 1 <= span.line <= len(lines):
            return lines[span.line - 1]
        return ""

    def diagnostic(self, code: str, message: str, span: Span) -> Diagnostic:
        return Diagnostic(code, message, span, self.line(span))
