"""Hypothesis strategies for random policy ASTs (used by the printer and differential tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from layergate.dsl import ast
from layergate.dsl.printer import KEYWORDS
from layergate.dsl.validate import FUNCTIONS

names = st.one_of(  # (a keyword or path root with more after it is a name: `subjects`)
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.builds(str.__add__, st.sampled_from(sorted(KEYWORDS)),
              st.from_regex(r"[A-Za-z0-9_]{1,3}", fullmatch=True)),
).filter(lambda n: n not in KEYWORDS)
target_names = st.one_of(names, st.text(min_size=1, max_size=6))
targets = st.one_of(
    st.just(ast.Targets(None)),
    st.lists(target_names, min_size=1, max_size=3).map(lambda ns: ast.Targets(tuple(ns))),
)
scalars = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
)
literals = scalars.map(ast.Literal)
list_literals = st.lists(literals, max_size=3).map(lambda items: ast.ListLiteral(tuple(items)))
ROOTS = ("subject", "action", "resource", "context", "caller", "data")


def _paths(keys: st.SearchStrategy) -> st.SearchStrategy:
    step = st.one_of(names.map(ast.Field), keys.map(ast.Index))
    return st.builds(lambda root, steps: ast.Path(root, tuple(steps)),
                     st.sampled_from(ROOTS), st.lists(step, max_size=3))


def _compound(children: st.SearchStrategy) -> st.SearchStrategy:
    ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    membership = st.builds(
        lambda item, container, form: ast.Membership(
            item, container, negated=form == "not in", written_as_contains=form == "contains"),
        children, children, st.sampled_from(["in", "not in", "contains"]))
    call = st.builds(lambda name, args: ast.Call(name, tuple(args)),
                     st.one_of(st.sampled_from(sorted(FUNCTIONS)), names),
                     st.lists(children, max_size=3))
    return st.one_of(
        st.builds(ast.Compare, ops, children, children),
        membership,
        call,
        st.builds(ast.And, children, children),
        st.builds(ast.Or, children, children),
        st.builds(ast.Not, children),
        _paths(children),
    )


expressions = st.recursive(
    st.one_of(literals, list_literals, names.map(ast.ConstRef), st.just(ast.Now()),
              _paths(literals)),
    _compound,
    max_leaves=12,
)


@st.composite
def layers(draw: st.DrawFn) -> ast.Layer:
    name = draw(names)
    rule_names = draw(st.lists(st.one_of(st.none(), names), max_size=4))
    rules = tuple(
        ast.Rule(id=f"{name}.{rule_name or position}", effect=draw(st.sampled_from(["allow",
                 "deny"])), actions=draw(targets), resources=draw(targets),
                 condition=draw(st.one_of(st.none(), expressions)), named=rule_name is not None)
        for position, rule_name in enumerate(rule_names, start=1)
    )
    description = draw(st.one_of(st.none(), st.text(max_size=12)))
    controls = tuple(draw(st.lists(st.text(max_size=10), max_size=2)))
    return ast.Layer(name, description, controls, rules)


roles = st.builds(
    lambda name, parents, grants: ast.Role(name, tuple(parents), tuple(grants)),
    names, st.lists(names, max_size=2),
    st.lists(st.builds(ast.Grant, targets, targets), max_size=3),
)
consts = st.builds(ast.Const, names, st.one_of(literals, list_literals))
modules = st.builds(
    lambda cs, rs, ls, orders: ast.Module("<generated>", tuple(cs), tuple(rs), tuple(ls),
                                          tuple(orders)),
    st.lists(consts, max_size=2), st.lists(roles, max_size=2), st.lists(layers(), max_size=3),
    st.lists(st.lists(names, min_size=1, max_size=3).map(
        lambda ns: ast.LayerOrder(tuple(ns))), max_size=1),
)
