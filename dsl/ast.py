"""Stage 1 output: the policy AST, frozen dataclasses built by `parser`.

Source positions (`Span`) are excluded from equality so that an AST printed back to text and
re-parsed compares equal to the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

Scalar = str | int | float | bool


class Span(NamedTuple):
    """Where a node starts (1-based line and column) and ends, in which file."""

    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0


NO_SPAN = Span("<none>", 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---- expressions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    """A string, number or boolean written in the policy."""

    value: Scalar
    span: Span = _span()


@dataclass(frozen=True)
class ListLiteral:
    """A list of scalars written in the policy, e.g. `["prod", "staging"]`."""

    items: tuple[Literal, ...]
    span: Span = _span()

    @property
    def values(self) -> tuple[Scalar, ...]:
        return tuple(item.value for item in self.items)


@dataclass(frozen=True)
class ConstRef:
    """A reference to a named constant declared with `const`."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Field:
    """`.name` step of a path."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Index:
    """`[key]` step of a path; the key is any expression that evaluates to a string."""

    key: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Path:
    """An attribute reference, e.g. `data.accounts[subject.id].namespace`."""

    root: str
    steps: tuple[Field | Index, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Now:
    """The evaluation time (the authorizer's clock), a timestamp."""

    span: Span = _span()


@dataclass(frozen=True)
class Compare:
    """`left OP right` with OP one of `== != < <= > >=`."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Membership:
    """`item in container`, `item not in container`, or `container contains item`."""

    item: Expr
    container: Expr
    negated: bool = False
    written_as_contains: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    """A built-in function call, e.g. `cidr(context.source_ip, "10.0.0.0/8")`."""

    name: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Not:
    operand: Expr
    span: Span = _span()


Expr = Literal | ListLiteral | ConstRef | Path | Now | Compare | Membership | Call | And | Or | Not


def walk(node: Expr) -> Iterator[Expr]:
    """Every sub-expression of `node`, itself included (path keys too), depth first."""
    pending: list[Expr] = [node]
    while pending:
        current = pending.pop()
        yield current
        if isinstance(current, (And, Or)):
            pending.extend((current.right, current.left))
        elif isinstance(current, Not):
            pending.append(current.operand)
        elif isinstance(current, Compare):
            pending.extend((current.right, current.left))
        elif isinstance(current, Membership):
            pending.extend((current.container, current.item))
        elif isinstance(current, Call):
            pending.extend(reversed(current.args))
        elif isinstance(current, Path):
            pending.extend(s.key for s in reversed(current.steps) if isinstance(s, Index))
        elif isinstance(current, ListLiteral):
            pending.extend(reversed(current.items))


# ---- declarations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Action names or resource types a rule or grant applies to; `names is None` means `*`."""

    names: tuple[str, ...] | None
    span: Span = _span()

    def matches(self, name: str) -> bool:
        return self.names is None or name in self.names


@dataclass(frozen=True)
class Grant:
    """`actions on resource_types` inside a role."""

    actions: Targets
    resources: Targets
    span: Span = _span()


@dataclass(frozen=True)
class Role:
    name: str
    parents: tuple[str, ...]
    grants: tuple[Grant, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Const:
    name: str
    value: Literal | ListLiteral
    span: Span = _span()


@dataclass(frozen=True)
class Rule:
    """One allow/deny rule. `id` is `layer.name` when named, else `layer.N` (1-based)."""

    id: str
    effect: str  # "allow" | "deny"
    actions: Targets
    resources: Targets
    condition: Expr | None
    named: bool
    span: Span = _span()


@dataclass(frozen=True)
class Layer:
    name: str
    description: str | None
    controls: tuple[str, ...]
    rules: tuple[Rule, ...]
    span: Span = _span()


@dataclass(frozen=True)
class LayerOrder:
    """`layers [a, b, c]`: the evaluation order, required when layers span several files."""

    names: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Source:
    """One policy file as read: its name and full text (the revision hashes these)."""

    name: str
    text: str


@dataclass(frozen=True)
class Module:
    """The declarations of one source file, in the order written."""

    source: str
    consts: tuple[Const, ...] = ()
    roles: tuple[Role, ...] = ()
    layers: tuple[Layer, ...] = ()
    orders: tuple[LayerOrder, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A validated policy: layers in evaluation order, roles and constants by name."""

    layers: tuple[Layer, ...]
    roles: dict[str, Role] = field(hash=False)
    consts: dict[str, Const] = field(hash=False)
    sources: tuple[Source, ...] = field(default=(), compare=False)
