"""AST -> policy text. Parsing the output gives back an equal AST (tested as a property)."""

from __future__ import annotations

import json
import re

from . import ast

KEYWORDS = frozenset({
    "const", "layers", "role", "extends", "layer", "controls", "allow", "deny", "on", "when",
    "or", "and", "not", "in", "contains", "now", "true", "false",
    "subject", "action", "resource", "context", "caller", "elevation", "data",
})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")

# Binding strength: a child printed where a stronger one is needed gets parentheses.
_OR, _AND, _NOT, _TEST, _OPERAND = 1, 2, 3, 4, 5


def to_text(node: ast.Module | ast.Policy) -> str:
    """Print a module, or a whole policy (with its `layers [...]` order), as policy text."""
    parts: list[str] = []
    if isinstance(node, ast.Policy):
        consts, roles, layers = node.consts.values(), node.roles.values(), node.layers
        parts.append("layers [" + ", ".join(layer.name for layer in layers) + "]")
    else:
        consts, roles, layers = node.consts, node.roles, node.layers
        parts.extend("layers [" + ", ".join(o.names) + "]" for o in node.orders)
    parts.extend(f"const {c.name} = {expr(c.value)}" for c in consts)
    parts.extend(_role(r) for r in roles)
    parts.extend(_layer(la) for la in layers)
    return "\n\n".join(parts) + "\n"


def _role(role: ast.Role) -> str:
    head = f"role {role.name}"
    if role.parents:
        head += " extends " + ", ".join(role.parents)
    grants = "".join(f"\n  {_targets(g.actions)} on {_targets(g.resources)}" for g in role.grants)
    return head + " {" + grants + ("\n}" if grants else "}")


def _layer(layer: ast.Layer) -> str:
    head = f"layer {layer.name}"
    if layer.description is not None:
        head += " " + _string(layer.description)
    if layer.controls:
        head += " controls " + ", ".join(_string(c) for c in layer.controls)
    rules = "".join(f"\n  {_rule(layer.name, r)}" for r in layer.rules)
    return head + " {" + rules + ("\n}" if rules else "}")


def _rule(layer: str, rule: ast.Rule) -> str:
    text = f"{rule.effect} {_targets(rule.actions)} on {_targets(rule.resources)}"
    if rule.named:
        text = rule.id.removeprefix(f"{layer}.") + ": " + text
    if rule.condition is not None:
        text += " when " + expr(rule.condition)
    return text


def _targets(targets: ast.Targets) -> str:
    if targets.names is None:
        return "*"
    if len(targets.names) == 1:
        return _target(targets.names[0])
    return "[" + ", ".join(_target(n) for n in targets.names) + "]"


def _target(name: str) -> str:
    return name if _NAME.match(name) and name not in KEYWORDS else _string(name)


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=True)


class Memo(dict):
    """Printed sub-expressions by node identity, for printing many nested nodes in one pass."""


def expr(node: ast.Expr, needed: int = _OR, memo: Memo | None = None) -> str:
    """Print an expression, parenthesised if it binds less tightly than `needed`."""
    if memo is None:
        text, strength = _expr(node, None)
    else:
        found = memo.get(id(node))
        if found is None:
            found = memo[id(node)] = _expr(node, memo)
        text, strength = found
    return f"({text})" if strength < needed else text


def _expr(node: ast.Expr, memo: Memo | None) -> tuple[str, int]:
    if isinstance(node, ast.Or):
        return f"{expr(node.left, _OR, memo)} or {expr(node.right, _AND, memo)}", _OR
    if isinstance(node, ast.And):
        return f"{expr(node.left, _AND, memo)} and {expr(node.right, _NOT, memo)}", _AND
    if isinstance(node, ast.Not):
        return f"not {expr(node.operand, _NOT, memo)}", _NOT
    if isinstance(node, ast.Compare):
        left, right = expr(node.left, _OPERAND, memo), expr(node.right, _OPERAND, memo)
        return f"{left} {node.op} {right}", _TEST
    if isinstance(node, ast.Membership):
        item, container = expr(node.item, _OPERAND, memo), expr(node.container, _OPERAND, memo)
        if node.written_as_contains:
            return f"{container} contains {item}", _TEST
        return f"{item} {'not in' if node.negated else 'in'} {container}", _TEST
    return _operand(node, memo), _OPERAND


def _operand(node: ast.Expr, memo: Memo | None = None) -> str:
    if isinstance(node, ast.Literal):
        return _scalar(node.value)
    if isinstance(node, ast.ListLiteral):
        return "[" + ", ".join(_scalar(item.value) for item in node.items) + "]"
    if isinstance(node, ast.ConstRef):
        return node.name
    if isinstance(node, ast.Now):
        return "now"
    if isinstance(node, ast.Call):
        return f"{node.name}(" + ", ".join(expr(a, _OR, memo) for a in node.args) + ")"
    if isinstance(node, ast.Path):
        return node.root + "".join(
            f".{step.name}" if isinstance(step, ast.Field) else f"[{expr(step.key, _OR, memo)}]"
            for step in node.steps
        )
    raise TypeError(f"not an expression: {node!r}")


def _scalar(value: ast.Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return _string(value)
