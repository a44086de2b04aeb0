"""The layering analyzer (`layergate lint`): finds where layered authorization is not layered.

Its main finding is the most common misapplication: an action on a resource type that some
layers let through with no real condition, so that the decision rests on fewer layers than
required (by default: fewer than two). It also reports rules that can never decide, roles that
grant nothing or are never used, and data paths no entity can provide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from layergate.dsl import ast
from layergate.dsl.errors import SourceLines

ERROR, WARNING = "error", "warning"
# Required fields of every request: presence checks on them are always true.
ALWAYS_PRESENT = {("subject", "type"), ("subject", "id"), ("action", "name"),
                  ("resource", "type"), ("resource", "id")}


@dataclass(frozen=True)
class Finding:
    code: str
    level: str
    message: str
    fix: str
    span: ast.Span
    source_line: str = ""
    pairs: tuple[tuple[str, str], ...] = ()  # the (action, resource type) pairs concerned

    def format(self) -> str:
        where = f"{self.span.file}:{self.span.line}:{self.span.column}"
        text = f"{where}: {self.level}: {self.code}: {self.message}\n    fix: {self.fix}"
        if self.source_line:
            text += f"\n    {self.source_line.strip()}"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "level": self.level,
                               "message": self.message, "fix": self.fix,
                               "file": self.span.file, "line": self.span.line,
                               "column": self.span.column}
        if self.pairs:
            out["pairs"] = [{"action": a, "resource_type": t} for a, t in self.pairs]
        return out


def analyze(policy: ast.Policy, data: Mapping[str, Any] | None = None,
            require_layers: Sequence[str] = (), min_layers: int = 2) -> list[Finding]:
    """Every finding for a validated policy, errors first, then in source order."""
    lines = SourceLines()
    for source in policy.sources:
        lines.add(source.name, source.text)
    found = _Analysis(policy, data, lines)
    found.layering(require_layers, min_layers)
    found.dead_rules()
    found.roles()
    if data is not None:
        found.data_paths(data)
    return sorted(found.findings, key=lambda f: (f.level != ERROR, f.span.file, f.span.line,
                                                 f.span.column, f.code))


def trivially_true(condition: ast.Expr | None) -> bool:
    """A condition that holds for every request (so the rule checks nothing)."""
    if condition is None:
        return True
    if isinstance(condition, ast.Literal):
        return condition.value is True
    if isinstance(condition, ast.Not):
        return trivially_false(condition.operand)
    if isinstance(condition, ast.Or):
        return trivially_true(condition.left) or trivially_true(condition.right)
    if isinstance(condition, ast.And):
        return trivially_true(condition.left) and trivially_true(condition.right)
    if isinstance(condition, ast.Compare) and condition.op == "==":
        return (isinstance(condition.left, ast.Literal) and condition.left == condition.right)
    if isinstance(condition, ast.Call) and condition.name == "present":
        path = condition.args[0]
        return (isinstance(path, ast.Path) and len(path.steps) == 1
                and isinstance(path.steps[0], ast.Field)
                and (path.root, path.steps[0].name) in ALWAYS_PRESENT)
    return False


def trivially_false(condition: ast.Expr) -> bool:
    if isinstance(condition, ast.Literal):
        return condition.value is False
    if isinstance(condition, ast.Not):
        return trivially_true(condition.operand)
    return False


def _covers(outer: ast.Targets, inner: ast.Targets) -> bool:
    if outer.names is None:
        return True
    return inner.names is not None and set(inner.names) <= set(outer.names)


class _Analysis:
    def __init__(self, policy: ast.Policy, data: Mapping[str, Any] | None,
                 lines: SourceLines) -> None:
        self.policy, self.data, self.lines = policy, data, lines
        self.findings: list[Finding] = []

    def add(self, code: str, level: str, message: str, fix: str, span: ast.Span,
            pairs: tuple[tuple[str, str], ...] = ()) -> None:
        self.findings.append(Finding(code, level, message, fix, span, self.lines.line(span),
                                     pairs))

    # -- the layering check
    def layering(self, require_layers: Sequence[str], min_layers: int) -> None:
        names = [layer.name for layer in self.policy.layers]
        for name in require_layers:
            if name not in names:
                span = self.policy.layers[0].span if self.policy.layers else ast.NO_SPAN
                self.add("missing_layer", ERROR, f"required layer `{name}` is not in the "
                         f"policy (layers: {', '.join(names)})",
                         f"add `layer {name} {{ ... }}` and list it in `layers [...]`", span)
        actions = sorted({a for layer in self.policy.layers for r in layer.rules
                          for a in r.actions.names or ()}
                         | {a for role in self.policy.roles.values() for g in role.grants
                            for a in g.actions.names or ()})
        types = sorted({t for layer in self.policy.layers for r in layer.rules
                        for t in r.resources.names or ()}
                       | {t for role in self.policy.roles.values() for g in role.grants
                          for t in g.resources.names or ()})
        bypasses: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for action in [*actions, None]:
            for resource_type in [*types, None]:
                self._pair(action, resource_type, require_layers, min_layers, bypasses)
        for (layer_name, rule_id), pairs in bypasses.items():
            rule = next(r for la in self.policy.layers if la.name == layer_name
                        for r in la.rules if r.id == rule_id)
            acts = ", ".join(f"`{a}`" for a in sorted({a for a, _ in pairs}))
            kinds = ", ".join(f"`{t}`" for t in sorted({t for _, t in pairs}))
            self.add("single_layer_allow", ERROR,
                     f"layer `{layer_name}` lets {acts} on {kinds} through with no real "
                     f"condition (rule `{rule_id}`), so the decision rests on too few layers",
                     "give the rule a condition this layer is responsible for (identity, "
                     "scope, context), or narrow its actions and resource types", rule.span,
                     tuple(pairs))

    def _pair(self, action: str | None, resource_type: str | None,
              require_layers: Sequence[str], min_layers: int,
              bypasses: dict[tuple[str, str], list[tuple[str, str]]]) -> None:
        passing: list[tuple[ast.Layer, ast.Rule]] = []
        gating: list[str] = []
        for layer in self.policy.layers:
            applicable = [r for r in layer.rules if _applies(r.actions, action)
                          and _applies(r.resources, resource_type)]
            allows = [r for r in applicable if r.effect == "allow"]
            denies = [r for r in applicable if r.effect == "deny"]
            if not allows or any(trivially_true(r.condition) for r in denies):
                return  # this layer never allows the pair: nothing to report
            free = next((r for r in allows if trivially_true(r.condition)), None)
            if free is not None and not denies:
                passing.append((layer, free))
            else:
                gating.append(layer.name)
        required_bypassed = [(la, r) for la, r in passing if la.name in require_layers]
        if len(gating) >= min_layers and not required_bypassed:
            return
        shown = (action or "*", resource_type or "*")
        for layer, rule in passing:
            if len(gating) < min_layers or layer.name in require_layers:
                bypasses.setdefault((layer.name, rule.id), []).append(shown)

    # -- rules that never decide
    def dead_rules(self) -> None:
        for layer in self.policy.layers:
            for position, rule in enumerate(layer.rules):
                earlier = layer.rules[:position]
                for other in earlier:
                    if (other.effect == rule.effect and trivially_true(other.condition)
                            and _covers(other.actions, rule.actions)
                            and _covers(other.resources, rule.resources)):
                        self.add("shadowed_rule", WARNING, f"rule `{rule.id}` can never decide: "
                                 f"`{other.id}` before it matches the same requests with no "
                                 "condition", "remove it, or narrow the earlier rule", rule.span)
                        break
                if rule.effect != "allow":
                    continue
                for other in layer.rules:
                    if (other.effect == "deny" and trivially_true(other.condition)
                            and _covers(other.actions, rule.actions)
                            and _covers(other.resources, rule.resources)):
                        self.add("overridden_allow", WARNING, f"allow rule `{rule.id}` can "
                                 f"never allow: deny rule `{other.id}` always matches the same "
                                 "requests", "give the deny a condition, or remove the allow",
                                 rule.span)
                        break

    # -- roles
    def roles(self) -> None:
        mentioned = self._mentioned_names()
        for role in self.policy.roles.values():
            if not self._grants_something(role.name, set()):
                self.add("empty_role", WARNING, f"role `{role.name}` grants nothing",
                         "give it grants (`action on type`) or remove it", role.span)
            extended = any(role.name in other.parents for other in self.policy.roles.values())
            if not extended and role.name not in mentioned:
                self.add("unused_role", WARNING, f"role `{role.name}` is never referenced by "
                         "another role, the policy or the data",
                         "bind it to an identity in the data, or remove it", role.span)

    def _grants_something(self, name: str, seen: set[str]) -> bool:
        role = self.policy.roles.get(name)
        if role is None or name in seen:
            return False
        seen.add(name)
        return bool(role.grants) or any(self._grants_something(p, seen) for p in role.parents)

    def _mentioned_names(self) -> set[str]:
        found: set[str] = set()
        for const in self.policy.consts.values():
            found.update(v for v in _literal_strings(const.value))
        for layer in self.policy.layers:
            for rule in layer.rules:
                if rule.condition is not None:
                    for node in ast.walk(rule.condition):
                        found.update(_literal_strings(node))
        pending: list[Any] = [self.data] if self.data is not None else []
        while pending:
            item = pending.pop()
            if isinstance(item, str):
                found.add(item)
            elif isinstance(item, dict):
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
        if self.data is None:  # roles may come from requests: nothing to conclude
            found.update(self.policy.roles)
        return found

    # -- data paths
    def data_paths(self, data: Mapping[str, Any]) -> None:
        for layer in self.policy.layers:
            for rule in layer.rules:
                if rule.condition is None:
                    continue
                for node in ast.walk(rule.condition):
                    if isinstance(node, ast.Path) and node.root == "data":
                        self._data_path(node, data)

    def _data_path(self, path: ast.Path, data: Mapping[str, Any]) -> None:
        steps = path.steps
        if (len(steps) < 3 or not isinstance(steps[0], ast.Field)
                or not isinstance(steps[1], ast.Index)
                or not all(isinstance(s, ast.Field) for s in steps[2:])):
            return
        document = data.get(steps[0].name)
        if not isinstance(document, dict) or not document:
            return
        for entity in document.values():
            value: Any = entity
            for step in steps[2:]:
                value = value.get(step.name) if isinstance(value, dict) else None  # type: ignore[union-attr]
            if value is not None:
                return
        tail = ".".join(s.name for s in steps[2:])  # type: ignore[union-attr]
        self.add("unprovidable_attribute", WARNING, f"no entry of `data.{steps[0].name}` has "
                 f"`{tail}`, so this condition can never be evaluated (it fails closed)",
                 "fix the attribute name, or add it to the data", path.span)


def _applies(targets: ast.Targets, name: str | None) -> bool:
    return targets.names is None or (name is not None and name in targets.names)


def _literal_strings(node: Any) -> list[str]:
    if isinstance(node, ast.Literal) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.ListLiteral):
        return [i.value for i in node.items if isinstance(i.value, str)]
    return []
