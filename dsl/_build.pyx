# cython: language_level=3
"""Stage 1's builder, in C: the AST nodes of each grammar rule, made from its children as the
parser reduces it (`parser._FastParser`, or lark on text the fast parser leaves to lark).

Each method of `Build` is named after a grammar rule (or alias) and gets every child, tokens
included (None for an absent optional part), and the span from the first child to the last;
for an expression in parentheses the parentheses count (a `Part` carries them). A 10,000-rule
file makes about 200,000 nodes: a frozen dataclass's `__init__` sets each field through
`object.__setattr__`, so the nodes are made as `copy` would make them (a new object, its
attributes set in its `__dict__`), about 3x faster; a test checks every field is set.
"""

import json
import re
from dataclasses import fields

from layergate.dsl import ast
from layergate.dsl.literals import is_unicode

cdef extern from "Python.h":
    int PyObject_GenericSetAttr(object node, object name, object value) except -1

cdef object _new = object.__new__
cdef object Literal = ast.Literal, ListLiteral = ast.ListLiteral, ConstRef = ast.ConstRef
cdef object Field = ast.Field, Index = ast.Index, Path = ast.Path, Compare = ast.Compare
cdef object Membership = ast.Membership, Call = ast.Call, And = ast.And, Or = ast.Or
cdef object Not = ast.Not, Targets = ast.Targets, Rule = ast.Rule


def _field_names(cls: type) -> tuple:
    return tuple(f.name for f in fields(cls))


cdef tuple LITERAL = _field_names(Literal), LIST_LITERAL = _field_names(ListLiteral)
cdef tuple CONST_REF = _field_names(ConstRef), FIELD = _field_names(Field)
cdef tuple INDEX = _field_names(Index), PATH = _field_names(Path)
cdef tuple COMPARE = _field_names(Compare), MEMBERSHIP = _field_names(Membership)
cdef tuple CALL = _field_names(Call), AND = _field_names(And), OR = _field_names(Or)
cdef tuple NOT = _field_names(Not), TARGETS = _field_names(Targets), RULE = _field_names(Rule)


cdef object _node(object cls, tuple names, tuple values):
    """A node of dataclass `cls` with its fields `names` set to `values`, in order."""
    cdef object node = _new(cls)
    cdef Py_ssize_t i
    for i in range(len(names)):
        PyObject_GenericSetAttr(node, names[i], values[i])
    return node


class TooDeep(Exception):
    """A condition nests deeper than the parser allows (it locates the node afterwards)."""


class BadLiteral(Exception):
    """A token the grammar accepts but that holds no valid value."""

    def __init__(self, token: object, message: str) -> None:
        self.token, self.message = token, message


cdef class Part:
    """A value with no span of its own (a name, a tuple, an expression in parentheses) and the
    text it takes up, which its parent's span reaches to."""

    cdef readonly object value, span


cdef class RuleDraft:
    """A rule before its layer gives it an id."""

    cdef readonly object name, effect, actions, resources, condition, span


cdef inline Part _part(object value, object span):
    """A part (made only here)."""
    cdef Part part = Part.__new__(Part)
    part.value, part.span = value, span
    return part


cdef inline object _expr(object item):
    """An expression, out of the parentheses it may have been written in."""
    return (<Part>item).value if type(item) is Part else item


cdef class Build:
    """The builder for one grammar; `start_file` names the file its spans are in."""

    cdef public str source
    cdef tuple tokens  # the types a token may have (lark's, the fast parser's)
    cdef Py_ssize_t max_height  # of a condition's expression; taller is `TooDeep`

    def __init__(self, tuple token_types, Py_ssize_t max_expr_height) -> None:
        self.source, self.tokens, self.max_height = "", token_types, max_expr_height

    def start_file(self, str source) -> None:
        self.source = source

    def reset(self) -> None:
        """Forget the last file's name."""
        self.source = ""

    cdef bint _token(self, object child):
        return type(child) in self.tokens

    # -- declarations
    def start(self, list items, span):
        return ast.Module(
            source=self.source,
            consts=tuple([i for i in items if isinstance(i, ast.Const)]),
            roles=tuple([i for i in items if isinstance(i, ast.Role)]),
            layers=tuple([i for i in items if isinstance(i, ast.Layer)]),
            orders=tuple([i for i in items if isinstance(i, ast.LayerOrder)]),
        )

    def const_decl(self, list children, span):
        return ast.Const(children[1].value, children[3], span)

    def order_decl(self, list children, span):
        names = tuple([c.value for c in children[2:len(children) - 1] if c.type == "NAME"])
        return ast.LayerOrder(names, span)

    def role_decl(self, list children, span):
        parents = (<Part>children[2]).value if children[2] is not None else ()
        return ast.Role(children[1].value, parents, tuple(children[4:len(children) - 1]), span)

    def extends(self, list children, span):
        return _part(tuple([c.value for c in children[1:] if c.type == "NAME"]), span)

    def grant(self, list children, span):
        return ast.Grant(children[0], children[2], span)

    def layer_decl(self, list children, span):
        cdef str layer_name = children[1].value
        cdef RuleDraft draft
        cdef Py_ssize_t position
        description = (<Part>children[2]).value if children[2] is not None else None
        controls = (<Part>children[3]).value if children[3] is not None else ()
        rules = []
        for position in range(5, len(children) - 1):
            draft = <RuleDraft>children[position]
            rules.append(_node(Rule, RULE, (
                f"{layer_name}.{draft.name or position - 4}", draft.effect, draft.actions,
                draft.resources, draft.condition, draft.name is not None, draft.span)))
        return ast.Layer(layer_name, description, controls, tuple(rules), span)

    def description(self, list children, span):
        return _part(_string(children[0]), span)

    def controls(self, list children, span):
        return _part(tuple([_string(c) for c in children[1:] if c.type == "STRING"]), span)

    def rule(self, list children, span):
        cdef RuleDraft draft = RuleDraft.__new__(RuleDraft)
        name, effect, condition = children[0], children[1], children[5]
        draft.name = name.value if name is not None else None
        draft.effect = (<Part>effect).value
        draft.actions, draft.resources = children[2], children[4]
        draft.condition = (<Part>condition).value if condition is not None else None
        draft.span = span
        return draft

    def rule_name(self, list children, span):
        return _part(children[0].value, span)

    def allow(self, list children, span):
        return _part("allow", span)

    def deny(self, list children, span):
        return _part("deny", span)

    def condition(self, list children, span):
        expr = _expr(children[1])
        where = expr.span  # (each level of an expression takes at least one character)
        if (where.end_line != where.line or where.end_column - where.column > self.max_height) \
                and _height(expr) > self.max_height:
            raise TooDeep
        return _part(expr, span)

    def any_target(self, list children, span):
        return _node(Targets, TARGETS, (None, span))

    def one_target(self, list children, span):
        return _node(Targets, TARGETS, ((_target(children[0]),), span))

    def target_list(self, list children, span):
        names = tuple([_target(c) for c in children[1:len(children) - 1]
                       if c.type == "NAME" or c.type == "STRING"])
        return _node(Targets, TARGETS, (names, span))

    # -- expressions
    def operand(self, list children, span):
        """`( expr )`: the expression itself, spanning its parentheses for its parent."""
        return _part(_expr(children[1]), span)

    def or_(self, list children, span):
        return _node(Or, OR, (_expr(children[0]), _expr(children[2]), span))

    def and_(self, list children, span):
        return _node(And, AND, (_expr(children[0]), _expr(children[2]), span))

    def not_(self, list children, span):
        return _node(Not, NOT, (_expr(children[1]), span))

    def compare(self, list children, span):
        return _node(Compare, COMPARE,
                     (children[1].value, _expr(children[0]), _expr(children[2]), span))

    def in_(self, list children, span):
        return _node(Membership, MEMBERSHIP,
                     (_expr(children[0]), _expr(children[2]), False, False, span))

    def not_in(self, list children, span):
        return _node(Membership, MEMBERSHIP,
                     (_expr(children[0]), _expr(children[3]), True, False, span))

    def contains(self, list children, span):
        return _node(Membership, MEMBERSHIP,
                     (_expr(children[2]), _expr(children[0]), False, True, span))

    def const_ref(self, list children, span):
        return _node(ConstRef, CONST_REF, (children[0].value, span))

    def call(self, list children, span):
        args = tuple([_expr(c) for c in children[2:len(children) - 1]
                      if c is not None and not self._token(c)])
        return _node(Call, CALL, (children[0].value, args, span))

    def now(self, list children, span):
        return ast.Now(span)

    def path(self, list children, span):
        return _node(Path, PATH, (children[0].value, tuple(children[1:]), span))

    def field(self, list children, span):
        return _node(Field, FIELD, (children[1].value, span))

    def index(self, list children, span):
        return _node(Index, INDEX, (_expr(children[1]), span))

    def list_lit(self, list children, span):
        items = tuple([c for c in children[1:len(children) - 1]
                       if c is not None and not self._token(c)])
        return _node(ListLiteral, LIST_LITERAL, (items, span))

    def string(self, list children, span):
        return _node(Literal, LITERAL, (_string(children[0]), span))

    def number(self, list children, span):
        token = children[0]
        cdef str text = token.value
        try:
            value = float(text) if "." in text or "e" in text or "E" in text else int(text)
        except ValueError:  # Python reads at most 4,300 digits as an int
            raise BadLiteral(token, f"number with {len(text):,} digits is too long") from None
        return _node(Literal, LITERAL, (value, span))

    def true(self, list children, span):
        return _node(Literal, LITERAL, (True, span))

    def false(self, list children, span):
        return _node(Literal, LITERAL, (False, span))


def _height(expr: object) -> int:
    """The height of an expression's parse tree: 1 for a leaf (a path step, a literal, an empty
    list; 2 for a list of literals), 1 more than its tallest part for any other node."""
    heights = {}  # (by id: every node is alive until the walk ends)
    pending = [(expr, False)]
    while pending:
        node, parts_done = pending.pop()
        parts = _parts(node)
        if parts and not parts_done:
            pending.append((node, True))
            pending.extend([(part, False) for part in parts])
        else:
            heights[id(node)] = 1 + max([heights[id(part)] for part in parts], default=0)
    return heights[id(expr)]


cdef tuple _parts(object node):
    """The sub-expressions and path steps right under a node."""
    if isinstance(node, (And, Or, Compare)):
        return node.left, node.right
    if isinstance(node, Membership):
        return node.item, node.container
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.key,)
    if isinstance(node, Path):
        return node.steps
    if isinstance(node, Call):
        return node.args
    if isinstance(node, ListLiteral):
        return node.items
    return ()


# A string with no escape, control character or half of a surrogate pair: its value is its text.
cdef object _PLAIN_STRING = re.compile(r'"[^\x00-\x1f\\\ud800-\udfff]*"').fullmatch


cdef str _string(object token):
    """The value of a STRING token: JSON string syntax, valid Unicode only."""
    cdef str text = token.value
    if _PLAIN_STRING(text) is not None:
        return text[1:len(text) - 1]
    try:
        value = json.loads(text)
    except json.JSONDecodeError:  # the grammar lets raw control characters through
        raise BadLiteral(token, "a string may not hold a raw control character (such as a "
                         "tab); write it as an escape: `\\t`, `\\u0001`") from None
    if not is_unicode(value):
        raise BadLiteral(token, "a `\\u` escape names half of a surrogate pair; write the "
                         "character itself, or both halves")
    return value


cdef str _target(object token):
    return _string(token) if token.type == "STRING" else token.value
