# Declarations of the Cython evaluator (engine/_eval.pyx). The enums mirror engine/opcodes.py;
# tests/test_compiled.py checks that they agree.

from cpython.object cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint64_t

cdef enum:
    CONST = 1
    FAIL = 2
    SLOT = 3
    DATA_COL = 4
    WALK = 5
    NOW = 6
    AND = 7
    OR = 8
    NOT = 9
    TRUTH = 10
    EQ = 11
    NE = 12
    LT = 13
    LE = 14
    GT = 15
    GE = 16
    MEMBER = 17
    STARTS_WITH = 18
    ENDS_WITH = 19
    GLOB = 20
    CIDR = 21
    INTERSECTS = 22
    SUBSET = 23
    GRANTS = 24
    TIME = 25
    PRESENT = 26

cdef enum:
    T_STR = 1
    T_NUM = 2
    T_BOOL = 3
    T_TIME = 4
    T_LIST = 5
    T_OBJ = 6
    T_OTHER = 7

cdef enum:
    E_MISSING = 0
    E_UNKNOWN_ENTITY = 1
    E_TYPE = 2
    E_INVALID = 3

cdef enum:
    EFFECT_ALLOW = 0
    EFFECT_DENY = 1
    OUTCOME_ALLOW = 0
    OUTCOME_DENY = 1
    OUTCOME_NO_MATCH = 2
    STEP_STATIC = 0
    STEP_DYNAMIC = 1

# A value: strings carry their id (-1 when not interned) and the str object; numbers the
# double; booleans and timestamps the integer; lists either a constant id (obj NULL) or the
# Python list; objects the dict. `obj` is always a borrowed reference.
cdef struct Val:
    int tag
    int64_t i
    double num
    PyObject* obj
