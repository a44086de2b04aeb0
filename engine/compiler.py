"""Stage 3: validated AST + data -> immutable decision `Tables`, in named, timed stages.

resolve   close role inheritance; check the roles that data binds
normalize list the rules, layer by layer, in policy order
intern    give every string the policy or data can compare against an integer id
index     per layer, the rules deny first in buckets by (action, resource type); role grant
          bitsets; data pre-joins; condition programs (constants inlined into them)
seal      freeze everything into `Tables` with the content-hash revision
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from layergate.dsl import PolicyError, ast
from layergate.dsl.errors import Diagnostic, SourceLines
from layergate.dsl.gcpause import gc_paused
from layergate.dsl.loader import data_problem
from layergate.dsl.printer import Memo
from layergate.dsl.printer import expr as printed

from . import opcodes as op
from .revision import policy_revision
from .tables import Tables

MAX_INDEX_CELLS = 1_000_000  # per layer: (named actions + 1) x (named resource types + 1)


@dataclass
class CompileReport:
    """How long each stage took, in seconds (the OPA-style timed stages)."""

    stages: dict[str, float] = field(default_factory=dict)


def compile_policy(policy: ast.Policy, data: Mapping[str, Any] | None = None,
                   report: CompileReport | None = None) -> Tables:
    """Compile a validated policy and its data; raises `PolicyError` with coded diagnostics."""
    with gc_paused():  # the stages build many acyclic tuples and lists
        return _compile(policy, data, report)


def _compile(policy: ast.Policy, data: Mapping[str, Any] | None,
             report: CompileReport | None) -> Tables:
    documents = dict(data or {})
    problem = data_problem(documents)  # loaded files were checked; data given in code not
    if problem:
        raise PolicyError([Diagnostic("invalid_data", problem, ast.Span("<data>", 0, 0))])
    builder = _Builder(policy, documents)
    stages: list[tuple[str, Callable[[], None]]] = [
        ("resolve", builder.resolve),
        ("normalize", builder.normalize),
        ("intern", builder.intern),
        ("index", builder.index),
    ]
    for name, stage in stages:
        started = time.perf_counter()
        stage()
        if report is not None:
            report.stages[name] = time.perf_counter() - started
    if builder.problems:
        raise PolicyError(builder.problems)
    started = time.perf_counter()
    tables = builder.seal()
    if report is not None:
        report.stages["seal"] = time.perf_counter() - started
    return tables


def _key(action: int, resource_type: int) -> int:
    """Index key of (action id, type id); -1 (any other / `*`) maps to 0."""
    return (action + 1) << 32 | (resource_type + 1)


class _Builder:
    def __init__(self, policy: ast.Policy, data: dict[str, Any]) -> None:
        self.policy = policy
        self.data = data
        self.problems: list[Diagnostic] = []
        self.lines = SourceLines()
        for source in policy.sources:
            self.lines.add(source.name, source.text)
        self.strings: dict[str, int] = {}
        self.texts: dict[str, int] = {}
        self.out: dict[str, list[Any]] = {}

    def problem(self, code: str, message: str, span: ast.Span) -> None:
        self.problems.append(self.lines.diagnostic(code, message, span))

    # -- resolve ------------------------------------------------------------------------------
    def resolve(self) -> None:
        self.role_order = sorted(self.policy.roles)
        self.role_grants: dict[str, set[tuple[str | None, str | None]]] = {}
        for name in self.role_order:
            self.role_grants[name] = self._closure(name)
        self._check_data_roles()

    def _closure(self, name: str) -> set[tuple[str | None, str | None]]:
        """Every (action, type) pair the role grants, its parents' included (None is `*`)."""
        pairs: set[tuple[str | None, str | None]] = set()
        seen: set[str] = set()
        pending = [name]
        while pending:
            role = self.policy.roles[pending.pop()]
            if role.name in seen:
                continue
            seen.add(role.name)
            pending.extend(role.parents)
            for grant in role.grants:
                for action in grant.actions.names or (None,):
                    for resource_type in grant.resources.names or (None,):
                        pairs.add((action, resource_type))
        return pairs

    def _check_data_roles(self) -> None:
        """A role list in data that names undeclared roles contradicts the policy."""
        if not self.data:
            return
        for layer in self.policy.layers:
            for rule in layer.rules:
                if rule.condition is None:
                    continue
                for node in ast.walk(rule.condition):
                    if isinstance(node, ast.Call) and node.name == "grants":
                        self._check_role_source(node)

    def _check_role_source(self, call: ast.Call) -> None:
        path = call.args[0]
        if not (isinstance(path, ast.Path) and path.root == "data" and len(path.steps) >= 2
                and isinstance(path.steps[0], ast.Field) and isinstance(path.steps[1], ast.Index)
                and not isinstance(path.steps[1].key, ast.Literal)):
            return
        document = self.data.get(path.steps[0].name)
        if not isinstance(document, dict):
            return
        tail = path.steps[2:]
        if not all(isinstance(s, ast.Field) for s in tail):
            return
        declared = self.policy.roles
        for key, entity in document.items():
            value: Any = entity
            for step in tail:
                value = value.get(step.name) if isinstance(value, dict) else None
            if isinstance(value, list):
                unknown = sorted({v for v in value if isinstance(v, str) and v not in declared})
                if unknown:
                    self.problem("unknown_role", f"data entry `{key}` of "
                                 f"`{_prefix(path, 1)}` binds "
                                 f"undeclared role(s) {', '.join(map(repr, unknown))}",
                                 call.span)

    # -- normalize ----------------------------------------------------------------------------
    def normalize(self) -> None:
        self.rules: list[tuple[int, ast.Rule]] = []
        for layer_index, layer in enumerate(self.policy.layers):
            for rule in layer.rules:
                self.rules.append((layer_index, rule))

    # -- intern -------------------------------------------------------------------------------
    def intern(self) -> None:
        for _, rule in self.rules:
            for name in (rule.actions.names or ()) + (rule.resources.names or ()):
                self.sid(name)
        for name in self.role_order:
            self.sid(name)
            for action, resource_type in self.role_grants[name]:
                for item in (action, resource_type):
                    if item is not None:
                        self.sid(item)
        _walk_strings(self.data, self.sid)

    def sid(self, text: str) -> int:
        found = self.strings.get(text)
        if found is None:
            found = self.strings[text] = len(self.strings)
        return found

    def tid(self, text: str) -> int:
        found = self.texts.get(text)
        if found is None:
            found = self.texts[text] = len(self.texts)
        return found

    # -- index --------------------------------------------------------------------------------
    def index(self) -> None:
        # The program refers back to this builder; kept only in this frame, the pair is freed
        # by reference counting instead of waiting for the cyclic collector.
        program = _Program(self)
        self._index_roles()
        self._index_layers()
        self.rule_cond, self.rule_uses_elevation = [], []
        for _, rule in self.rules:
            program.reads_elevation = False
            self.rule_cond.append(
                -1 if rule.condition is None else program.condition(rule.condition))
            self.rule_uses_elevation.append(int(program.reads_elevation))
        self.program_arrays = program.freeze()

    def _index_roles(self) -> None:
        self.role_index = {name: i for i, name in enumerate(self.role_order)}
        self.role_words = max(1, (len(self.role_order) + 63) // 64)
        by_key: dict[int, int] = {}
        for name in self.role_order:
            bit = self.role_index[name]
            for action, resource_type in self.role_grants[name]:
                key = _key(-1 if action is None else self.strings[action],
                           -1 if resource_type is None else self.strings[resource_type])
                by_key[key] = by_key.get(key, 0) | (1 << bit)
        self.grant_keys = sorted(by_key)
        self.bitsets: list[int] = []
        self.bitset_ids: dict[int, int] = {}
        self.grant_bitset = [self.bitset(by_key[key]) for key in self.grant_keys]

    def bitset(self, mask: int) -> int:
        """Id of a role bitset (deduplicated)."""
        found = self.bitset_ids.get(mask)
        if found is None:
            found = self.bitset_ids[mask] = len(self.bitset_ids)
            words = [(mask >> (64 * w)) & 0xFFFF_FFFF_FFFF_FFFF for w in range(self.role_words)]
            self.bitsets.extend(_signed64(w) for w in words)
        return found

    def roles_of(self, names: list[str]) -> int:
        """Bitset id of the declared roles among `names` (undeclared names grant nothing)."""
        mask = 0
        for name in names:
            if name in self.role_index:
                mask |= 1 << self.role_index[name]
        return self.bitset(mask)

    def _index_layers(self) -> None:
        self.layer_key_start: list[int] = []
        self.index_keys: list[int] = []
        self.index_bucket: list[int] = []
        self.buckets: dict[tuple[int, ...], int] = {}
        self.bucket_list: list[tuple[int, ...]] = []
        for layer_index, layer in enumerate(self.policy.layers):
            self.layer_key_start.append(len(self.index_keys))
            members = [(i, rule) for i, (li, rule) in enumerate(self.rules) if li == layer_index]
            self._index_layer(layer, members)
        self.layer_key_start.append(len(self.index_keys))

    def _index_layer(self, layer: ast.Layer, members: list[tuple[int, ast.Rule]]) -> None:
        actions = sorted({a for _, r in members for a in r.actions.names or ()})
        types = sorted({t for _, r in members for t in r.resources.names or ()})
        if (len(actions) + 1) * (len(types) + 1) > MAX_INDEX_CELLS:
            self.problem("index_too_large", f"layer `{layer.name}` names {len(actions)} actions "
                         f"and {len(types)} resource types; split it into smaller layers",
                         layer.span)
            return
        ordered = ([(i, r) for i, r in members if r.effect == "deny"]
                   + [(i, r) for i, r in members if r.effect == "allow"])
        by_action: dict[str | None, list[int]] = {None: []}
        for position, (_, rule) in enumerate(ordered):
            for action in rule.actions.names or (None,):
                by_action.setdefault(action, []).append(position)
        ids = [index for index, _ in ordered]
        # Per position: the resource types a rule names, or None for `*`.
        named = [None if rule.resources.names is None else frozenset(rule.resources.names)
                 for _, rule in ordered]
        cells: list[tuple[int, int]] = []
        for action in [None, *actions]:
            candidates = sorted(set(by_action.get(action, [])) | set(by_action[None]))
            anywhere = tuple(ids[p] for p in candidates if named[p] is None)
            for resource_type in [None, *types]:
                chosen = anywhere if resource_type is None else tuple(
                    ids[p] for p in candidates
                    if named[p] is None or resource_type in named[p])
                key = _key(-1 if action is None else self.strings[action],
                           -1 if resource_type is None else self.strings[resource_type])
                cells.append((key, self._bucket(chosen)))
        for key, bucket in sorted(cells):
            self.index_keys.append(key)
            self.index_bucket.append(bucket)

    def _bucket(self, rules: tuple[int, ...]) -> int:
        found = self.buckets.get(rules)
        if found is None:
            found = self.buckets[rules] = len(self.bucket_list)
            self.bucket_list.append(rules)
        return found

    # -- seal ---------------------------------------------------------------------------------
    def seal(self) -> Tables:
        bucket_start, bucket_rules = [], []
        for rules in self.bucket_list:
            bucket_start.append(len(bucket_rules))
            bucket_rules.extend(rules)
        bucket_start.append(len(bucket_rules))
        return Tables(
            revision=policy_revision(self.policy.sources, self.data),
            strings=tuple(self.strings),
            texts=tuple(self.texts),
            layer_names=tuple(layer.name for layer in self.policy.layers),
            layer_key_start=tuple(self.layer_key_start),
            index_keys=tuple(self.index_keys),
            index_bucket=tuple(self.index_bucket),
            bucket_start=tuple(bucket_start),
            bucket_rules=tuple(bucket_rules),
            rule_ids=tuple(rule.id for _, rule in self.rules),
            rule_layer=tuple(layer for layer, _ in self.rules),
            rule_effect=tuple(op.EFFECT_DENY if rule.effect == "deny" else op.EFFECT_ALLOW
                              for _, rule in self.rules),
            rule_cond=tuple(self.rule_cond),
            rule_uses_elevation=tuple(self.rule_uses_elevation),
            **self.program_arrays,
            role_names=tuple(self.strings[name] for name in self.role_order),
            role_words=self.role_words,
            grant_keys=tuple(self.grant_keys),
            grant_bitset=tuple(self.grant_bitset),
            bitset_words=tuple(self.bitsets),
        )


class _Program:
    """Builds condition programs, constants, slots, walks and data pre-joins."""

    def __init__(self, builder: _Builder) -> None:
        self.b = builder
        self.memo = Memo()
        self.nodes: list[tuple[int, int, int, int, int]] = []
        self.consts: list[tuple[int, int, float, int, int]] = []
        self.const_ids: dict[Any, int] = {}
        self.list_items: list[int] = []
        self.objects: list[Any] = []
        self.slots: dict[tuple[int, tuple[str, ...]], int] = {}
        self.slot_rows: list[tuple[int, list[int], list[int]]] = []
        self.steps: list[tuple[int, int, int, int]] = []
        self.columns: dict[tuple[str, str, tuple[Any, ...]], int] = {}
        self.column_rows: list[tuple[int, int, list[tuple[int, int, int]]]] = []
        self.docs: dict[str, int] = {}
        self.doc_rows: list[list[int]] = []
        self.slot_text: list[str] = []
        self.reads_elevation = False  # whether the condition being built reads `elevation.*`

    # -- nodes
    def node(self, opcode: int, a: int = 0, b: int = 0, c: int = 0, text: str = "") -> int:
        self.nodes.append((opcode, a, b, c, self.b.tid(text)))
        return len(self.nodes) - 1

    def text(self, e: ast.Expr) -> str:
        return printed(e, memo=self.memo)

    def condition(self, expr: ast.Expr) -> int:
        return self.node(op.TRUTH, self.expr(expr), text=self.text(expr))

    def expr(self, e: ast.Expr) -> int:
        build = _EXPR_BUILDERS.get(type(e))
        if build is None:
            raise TypeError(f"not an expression: {e!r}")
        return build(self, e)

    def _literal(self, e: ast.Literal) -> int:
        return self.node(op.CONST, self.scalar(e.value), text=self.text(e))

    def _list(self, e: ast.ListLiteral) -> int:
        return self.node(op.CONST, self.json_list(list(e.values)), text=self.text(e))

    def _const_ref(self, e: ast.ConstRef) -> int:
        return self.expr(self.b.policy.consts[e.name].value)

    def _now(self, e: ast.Now) -> int:
        return self.node(op.NOW, text=self.text(e))

    def _and(self, e: ast.And) -> int:
        return self.node(op.AND, self.expr(e.left), self.expr(e.right), text=self.text(e))

    def _or(self, e: ast.Or) -> int:
        return self.node(op.OR, self.expr(e.left), self.expr(e.right), text=self.text(e))

    def _not(self, e: ast.Not) -> int:
        return self.node(op.NOT, self.expr(e.operand), text=self.text(e))

    def _compare(self, e: ast.Compare) -> int:
        return self.node(_COMPARE_OPS[e.op], self.expr(e.left), self.expr(e.right),
                         text=self.text(e))

    def _membership(self, e: ast.Membership) -> int:
        return self.node(op.MEMBER, self.expr(e.item), self.expr(e.container),
                         int(e.negated), text=self.text(e))

    def _call(self, e: ast.Call) -> int:
        return self.call(e, self.text(e))

    def call(self, e: ast.Call, text: str) -> int:
        opcode = {"starts_with": op.STARTS_WITH, "ends_with": op.ENDS_WITH, "glob": op.GLOB,
                  "cidr": op.CIDR, "intersects": op.INTERSECTS, "subset": op.SUBSET,
                  "grants": op.GRANTS, "time": op.TIME, "present": op.PRESENT}[e.name]
        args = [self.expr(arg) for arg in e.args]
        return self.node(opcode, *args, text=text)

    # -- constants
    def scalar(self, value: Any) -> int:
        if isinstance(value, bool):
            return self.const((op.T_BOOL, int(value), 0.0, 0, -1))
        if isinstance(value, (int, float)):
            return self.const((op.T_NUM, 0, float(value), 0, -1))
        return self.const((op.T_STR, self.b.sid(value), 0.0, 0, -1))

    def const(self, row: tuple[int, int, float, int, int]) -> int:
        key = (row[0], row[1], repr(row[2]), row[3], row[4])
        found = self.const_ids.get(key)
        if found is None:
            found = self.const_ids[key] = len(self.consts)
            self.consts.append(row)
        return found

    def json_value(self, value: Any) -> int:
        """A constant for any JSON value (None is not a value: callers handle missing)."""
        if isinstance(value, list):
            return self.json_list(value)
        if isinstance(value, dict):
            self.objects.append(value)
            return self.const((op.T_OBJ, len(self.objects) - 1, 0.0, 0, -1))
        return self.scalar(value)

    def json_list(self, values: list[Any]) -> int:
        items = [self.json_value(v) if v is not None else self._null() for v in values]
        start = len(self.list_items)
        self.list_items.extend(items)
        roles = -1
        if all(isinstance(v, str) for v in values):
            roles = self.b.roles_of(values)
        return self.const((op.T_LIST, start, 0.0, len(items), roles))

    def _null(self) -> int:
        """JSON null inside a list: a value of no kind, so every operation on it fails."""
        return self.const((op.T_OTHER, 0, 0.0, 0, -1))

    # -- paths
    def path(self, path: ast.Path) -> int:
        if path.root == "data":
            return self._data_path(path)
        if path.root == "elevation":
            self.reads_elevation = True
        static = 0
        while static < len(path.steps) and _static_key(path.steps[static]) is not None:
            static += 1
        slot = self.slot(path, static)
        return self.walk(path, slot, static)

    def slot(self, path: ast.Path, count: int) -> int:
        keys = tuple(_static_key(step) for step in path.steps[:count])
        root = op.ROOTS.index(path.root)
        found = self.slots.get((root, keys))
        if found is None:
            found = self.slots[(root, keys)] = len(self.slot_rows)
            prefixes = [_prefix(path, k + 1) for k in range(count)]
            self.slot_rows.append((root, [self.b.sid(k) for k in keys],
                                   [self.b.tid(text) for text in prefixes]))
            self.slot_text.append(prefixes[-1] if prefixes else _prefix(path, 0))
        return self.node(op.SLOT, found, text=self.slot_text[found])

    def walk(self, path: ast.Path, base: int, start: int) -> int:
        if start == len(path.steps):
            return base
        # Dynamic keys first: a key that is itself a walk appends its own steps, and this
        # walk's steps must be one run.
        keys = {position: self.expr(step.key) for position, step in enumerate(path.steps)
                if position >= start and _static_key(step) is None
                and isinstance(step, ast.Index)}
        first = len(self.steps)
        for position in range(start, len(path.steps)):
            step = path.steps[position]
            missing = (op.E_UNKNOWN_ENTITY if path.root == "data" and isinstance(step, ast.Index)
                       else op.E_MISSING)
            text = self.b.tid(_prefix(path, position + 1))
            key = _static_key(step)
            if key is not None:
                self.steps.append((op.STEP_STATIC, self.b.sid(key), text, missing))
            else:
                self.steps.append((op.STEP_DYNAMIC, keys[position], text, missing))
        return self.node(op.WALK, base, first, len(path.steps) - start, text=self.text(path))

    def _data_path(self, path: ast.Path) -> int:
        """Resolve the static part at compile time; pre-join `data.doc[key].static...`."""
        value: Any = self.b.data
        position = 0
        while position < len(path.steps) and _static_key(path.steps[position]) is not None:
            failure = _static_step(value, path, position)
            if failure is not None:
                return self.node(op.FAIL, failure, text=_prefix(path, position + 1))
            value = value[_static_key(path.steps[position])]
            position += 1
        if position == len(path.steps):
            return self.node(op.CONST, self.json_value(value), text=self.text(path))
        if isinstance(value, dict) and position >= 1:
            end = position + 1
            while end < len(path.steps) and _static_key(path.steps[end]) is not None:
                end += 1
            column = self.column(path, value, position, end)
            key_node = self.expr(path.steps[position].key)  # type: ignore[union-attr]
            node = self.node(op.DATA_COL, column, key_node, text=_prefix(path, end))
            return self.walk(path, node, end)
        base = self.node(op.CONST, self.json_value(value), text=_prefix(path, position))
        return self.walk(path, base, position)

    def column(self, path: ast.Path, document: dict[str, Any], index_at: int, end: int) -> int:
        doc_name = _prefix(path, index_at)
        # Error paths name the key expression, so a column is per (document, key, tail).
        identity = (doc_name, _prefix(path, index_at + 1),
                    tuple(_static_key(s) for s in path.steps[index_at + 1:end]))
        found = self.columns.get(identity)
        if found is not None:
            return found
        doc = self.docs.get(doc_name)
        keys = [k for k in document if isinstance(k, str)]
        if doc is None:
            doc = self.docs[doc_name] = len(self.doc_rows)
            self.doc_rows.append([self.b.sid(k) for k in keys])
        cells = [self._cell(document[k], path, index_at, end) for k in keys]
        found = self.columns[identity] = len(self.column_rows)
        self.column_rows.append((doc, self.b.tid(_prefix(path, index_at + 1)), cells))
        return found

    def _cell(self, entity: Any, path: ast.Path, index_at: int,
              end: int) -> tuple[int, int, int]:
        """(constant, error code, error text) of one entity's value at the column's path."""
        if entity is None:
            return (0, op.E_UNKNOWN_ENTITY, self.b.tid(_prefix(path, index_at + 1)))
        value = entity
        for position in range(index_at + 1, end):
            failure = _static_step(value, path, position)
            if failure is not None:
                return (0, failure, self.b.tid(_prefix(path, position + 1)))
            value = value[_static_key(path.steps[position])]
        return (self.json_value(value), -1, 0)

    def freeze(self) -> dict[str, tuple[Any, ...]]:
        slot_step_start, slot_keys, slot_step_text = [], [], []
        for _, keys, texts in self.slot_rows:
            slot_step_start.append(len(slot_keys))
            slot_keys.extend(keys)
            slot_step_text.extend(texts)
        slot_step_start.append(len(slot_keys))
        doc_entity_start, doc_entities = [], []
        for entities in self.doc_rows:
            doc_entity_start.append(len(doc_entities))
            doc_entities.extend(entities)
        doc_entity_start.append(len(doc_entities))
        column_cell_start, cells = [], []
        for _, _, rows in self.column_rows:
            column_cell_start.append(len(cells))
            cells.extend(rows)
        column_cell_start.append(len(cells))
        return {
            "node_op": tuple(n[0] for n in self.nodes),
            "node_a": tuple(n[1] for n in self.nodes),
            "node_b": tuple(n[2] for n in self.nodes),
            "node_c": tuple(n[3] for n in self.nodes),
            "node_text": tuple(n[4] for n in self.nodes),
            "slot_root": tuple(row[0] for row in self.slot_rows),
            "slot_step_start": tuple(slot_step_start),
            "slot_keys": tuple(slot_keys),
            "slot_step_text": tuple(slot_step_text),
            "step_kind": tuple(s[0] for s in self.steps),
            "step_key": tuple(s[1] for s in self.steps),
            "step_text": tuple(s[2] for s in self.steps),
            "step_missing": tuple(s[3] for s in self.steps),
            "const_tag": tuple(c[0] for c in self.consts),
            "const_int": tuple(c[1] for c in self.consts),
            "const_num": tuple(c[2] for c in self.consts),
            "const_len": tuple(c[3] for c in self.consts),
            "const_roles": tuple(c[4] for c in self.consts),
            "list_items": tuple(self.list_items),
            "objects": tuple(self.objects),
            "doc_entity_start": tuple(doc_entity_start),
            "doc_entities": tuple(doc_entities),
            "column_doc": tuple(row[0] for row in self.column_rows),
            "column_key_text": tuple(row[1] for row in self.column_rows),
            "column_cell_start": tuple(column_cell_start),
            "cell_const": tuple(c[0] for c in cells),
            "cell_error": tuple(c[1] for c in cells),
            "cell_text": tuple(c[2] for c in cells),
        }


_COMPARE_OPS = {"==": op.EQ, "!=": op.NE, "<": op.LT, "<=": op.LE, ">": op.GT, ">=": op.GE}
_EXPR_BUILDERS: dict[type, Callable[[_Program, Any], int]] = {
    ast.Literal: _Program._literal, ast.ListLiteral: _Program._list,
    ast.ConstRef: _Program._const_ref, ast.Now: _Program._now, ast.Path: _Program.path,
    ast.And: _Program._and, ast.Or: _Program._or, ast.Not: _Program._not,
    ast.Compare: _Program._compare, ast.Membership: _Program._membership,
    ast.Call: _Program._call,
}


def _static_key(step: ast.Field | ast.Index) -> str | None:
    if isinstance(step, ast.Field):
        return step.name
    if isinstance(step.key, ast.Literal) and isinstance(step.key.value, str):
        return step.key.value
    return None


def _static_step(value: Any, path: ast.Path, position: int) -> int | None:
    """The error code of taking static step `position` from `value`, or None if it resolves."""
    if not isinstance(value, dict):
        return op.E_TYPE
    if value.get(_static_key(path.steps[position])) is None:
        step = path.steps[position]
        return op.E_UNKNOWN_ENTITY if isinstance(step, ast.Index) else op.E_MISSING
    return None


def _prefix(path: ast.Path, steps: int) -> str:
    return printed(ast.Path(path.root, path.steps[:steps]))


def _walk_strings(value: Any, intern: Callable[[str], int]) -> None:
    """Intern every string in the data (keys and values)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            intern(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    intern(key)
                pending.append(child)
        elif isinstance(item, list):
            pending.extend(item)


def _signed64(word: int) -> int:
    return word - (1 << 64) if word >= 1 << 63 else word
