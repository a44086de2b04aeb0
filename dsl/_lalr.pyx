# cython: language_level=3
"""The fast parser's loop, in C: lexing, shifting and reducing by the tables and plans that
`parser._FastParser` reads from lark's LALR parser once (see there for what it must agree on).

Per token the interpreter loop cost most of a parse; here only the builder's methods (which
make the AST nodes) run as Python code.

Spans are left out of the cyclic garbage collector (`PyObject_GC_UnTrack`): a span holds a
file name and four ints, so it can be in no cycle, and a 10,000-rule file has 150,000 of them,
half the objects the first collection after a parse would walk (reference counting still frees
them; a tuple is untracked again on its way out, so this is safe in any build).
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(object op)

cpdef enum Reduction:  # how the loop reduces a rule (`parser._FastParser._plan` picks it)
    PASS = 0  # its lone child is its value (`?rule: child`)
    FLAT = 1  # its children, as a list its parent splices in (`_rule`, a repetition)
    BUILD = 2  # the builder's method makes its value
    BUILD_OR_PASS = 3  # BUILD, but a lone child is its value (`?rule: "(" expr ")"`)

cdef object _new_tuple = tuple.__new__


class NotFast(Exception):
    """Text the fast parser has no token for, or that does not parse: lark reports it."""


cdef list _filtered(list children, tuple child_filter):
    """The children a rule's builder gets, as lark's `ChildFilterLALR` makes them: for each
    child kept, the None of absent optional parts before it, then it, or its items spliced;
    then the None of absent parts at the end."""
    cdef list kept = []
    cdef tuple keep = child_filter[0], step
    cdef Py_ssize_t nones, i
    for step in keep:
        nones = step[2]
        if nones:
            kept.extend([None] * nones)
        i = step[0]
        if not step[1]:
            kept.append(children[i])
        elif kept:
            kept.extend(<list>children[i])
        else:  # (a left-recursive repetition grows its own list)
            kept = <list>children[i]
    nones = child_filter[1]
    if nones:
        kept.extend([None] * nones)
    return kept


cdef class Loop:
    """One grammar's tables, run over a text by `parse`."""

    cdef list actions, reductions
    cdef dict keywords
    cdef frozenset roots
    cdef Py_ssize_t start, end
    cdef object findall, span_type, token_type

    def __init__(self, list actions, list reductions, dict keywords, frozenset roots,
                 Py_ssize_t start, Py_ssize_t end, object scan, object span_type,
                 object token_type) -> None:
        self.actions, self.keywords, self.roots = actions, keywords, roots
        self.reductions = [(size, origin, int(how), child_filter, method)  # (how: an exact int)
                           for size, origin, how, child_filter, method in reductions]
        self.start, self.end, self.findall = start, end, scan.findall
        self.span_type, self.token_type = span_type, token_type

    def parse(self, str text, str source):
        """The builder's value for the whole text; raises `NotFast` where lark must look."""
        cdef Py_ssize_t capacity = 64
        cdef Py_ssize_t* states = <Py_ssize_t*>PyMem_Malloc(capacity * sizeof(Py_ssize_t))
        if states == NULL:
            raise MemoryError()
        states[0] = self.start
        try:
            return self._run(text, source, &states, &capacity)
        finally:
            PyMem_Free(states)

    cdef object _run(self, str text, str source, Py_ssize_t** stack, Py_ssize_t* capacity):
        """`parse`, over a state stack of `capacity` entries at `stack` (grown as needed)."""
        cdef list actions = self.actions, reductions = self.reductions
        cdef dict keywords = self.keywords, accepts
        cdef frozenset roots = self.roots
        cdef object span_type = self.span_type, token_type = self.token_type
        cdef Py_ssize_t end_state = self.end, state = self.start, depth = 1
        cdef Py_ssize_t* states = stack[0]
        cdef Py_ssize_t pos = 0, line_start = 0, column, newlines
        cdef object line = 1  # (one int object for all the tokens and spans on a line)
        cdef Py_ssize_t size, count, how
        cdef list values = [], wheres = [], children
        cdef tuple match, plan
        cdef object first, last, token  # (a `Span` or a token: tuples of a subclass)
        cdef str skipped, value, kind, origin
        cdef object found, span, child_filter
        for found in self.findall(text):
            match = <tuple>found
            skipped = <str>match[0]
            if skipped:
                newlines = skipped.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + skipped.rindex("\n") + 1
                pos += len(skipped)
            accepts = <dict>actions[state]
            if match[3]:  # a word
                value = <str>match[3]
                kind = <str>keywords.get(value, "NAME")
                if kind == "NAME" or kind not in accepts:  # (a root outranks a name)
                    kind = "ROOT" if value in roots and "ROOT" in accepts else "NAME"
            elif match[4]:  # a sign
                value = <str>match[4]
                kind = <str>keywords.get(value, "COMPARE")
            elif match[1]:
                value, kind = <str>match[1], "STRING"
            elif match[2]:
                value, kind = <str>match[2], "NUMBER"
            elif match[5]:  # a character no token starts with
                raise NotFast
            else:
                value, kind = "", "$END"
            column = pos - line_start + 1
            pos += len(value)
            found = accepts.get(kind)
            while found is not None and <Py_ssize_t>found < 0:  # reduce, as the token makes
                plan = <tuple>reductions[~<Py_ssize_t>found]
                size, origin, how = plan[0], <str>plan[1], plan[2]
                if how == PASS:
                    state = <Py_ssize_t>(<dict>actions[states[depth - 2]])[origin]
                    states[depth - 1] = state
                    found = (<dict>actions[state]).get(kind)
                    continue
                count = len(values)
                if size:
                    first, last = wheres[count - size], wheres[count - 1]
                    children = values[count - size:count]
                    del values[count - size:count]
                    del wheres[count - size:count]
                    depth -= size
                    span = _new_tuple(span_type, (source, (<tuple>first)[1], (<tuple>first)[2],
                                                   (<tuple>last)[3], (<tuple>last)[4]))
                    PyObject_GC_UnTrack(span)
                else:
                    children, span = [], None
                child_filter = plan[3]
                if child_filter is not None:
                    children = _filtered(children, <tuple>child_filter)
                if how == FLAT:
                    values.append(children)
                elif how == BUILD or len(children) != 1:
                    values.append(plan[4](children, span))
                else:
                    values.append(children[0])
                wheres.append(span)
                state = <Py_ssize_t>(<dict>actions[states[depth - 1]])[origin]
                if state == end_state:
                    return values[len(values) - 1]
                states = _push(stack, capacity, depth, state)
                depth += 1
                found = (<dict>actions[state]).get(kind)
            if found is None or not value:
                raise NotFast
            state = <Py_ssize_t>found
            states = _push(stack, capacity, depth, state)
            depth += 1
            token = _new_tuple(token_type, (kind, line, column, line, column + len(value), value))
            values.append(token)
            wheres.append(token)
        raise NotFast  # (the last match is the end of the text: not reached)


cdef Py_ssize_t* _push(Py_ssize_t** stack, Py_ssize_t* capacity, Py_ssize_t depth,
                       Py_ssize_t state) except NULL:
    """Put `state` at `depth` of the state stack, growing it if full; the stack's address."""
    cdef Py_ssize_t* grown
    if depth == capacity[0]:
        grown = <Py_ssize_t*>PyMem_Realloc(stack[0], 2 * capacity[0] * sizeof(Py_ssize_t))
        if grown == NULL:
            raise MemoryError()
        stack[0] = grown
        capacity[0] *= 2
    stack[0][depth] = state
    return stack[0]
