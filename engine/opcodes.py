"""Numbering shared by the compiler and both table evaluators (the Cython `.pxd` mirrors it).

Condition programs are trees stored in flat arrays: node i has an opcode and up to three
integer operands (`a`, `b`, `c`) plus `text`, the id of its printed source (error paths).
"""

# ---- node opcodes ---------------------------------------------------------------------------
CONST = 1        # a: constant id
FAIL = 2         # a: error code, text: path -- a static data path that does not resolve
SLOT = 3         # a: request slot id (a static path into the request)
DATA_COL = 4     # a: pre-joined data column, b: node giving the entity key
WALK = 5         # a: base node (an object), b: first walk step, c: number of steps
NOW = 6
AND = 7          # a, b
OR = 8           # a, b
NOT = 9          # a
TRUTH = 10       # a: the whole condition, which must be a boolean
EQ = 11          # a, b
NE = 12
LT = 13
LE = 14
GT = 15
GE = 16
MEMBER = 17      # a: item, b: container, c: 1 for `not in`
STARTS_WITH = 18  # a, b
ENDS_WITH = 19
GLOB = 20        # a: text, b: pattern or list of patterns
CIDR = 21        # a: address, b: range or list of ranges
INTERSECTS = 22  # a, b
SUBSET = 23      # a, b
GRANTS = 24      # a: list of role names
TIME = 25        # a: RFC 3339 text
PRESENT = 26     # a: a path node (SLOT, DATA_COL, WALK, FAIL)

# ---- value tags ----------------------------------------------------------------------------
T_STR = 1
T_NUM = 2
T_BOOL = 3
T_TIME = 4
T_LIST = 5
T_OBJ = 6
T_OTHER = 7  # null inside a list, or a non-JSON value: never equal, never walkable

# ---- error codes (indexes into ERROR_CODES) -------------------------------------------------
E_MISSING = 0
E_UNKNOWN_ENTITY = 1
E_TYPE = 2
E_INVALID = 3
ERROR_CODES = ("missing_attribute", "unknown_entity", "type_error", "invalid_value")

# ---- request roots -------------------------------------------------------------------------
ROOTS = ("subject", "action", "resource", "context", "caller", "elevation")

# ---- rules and layers ----------------------------------------------------------------------
EFFECT_ALLOW = 0
EFFECT_DENY = 1
OUTCOME_ALLOW = 0
OUTCOME_DENY = 1
OUTCOME_NO_MATCH = 2
OUTCOMES = ("allow", "deny", "no_match")

# A walk step's key is a static string (strings table id) or a node to evaluate.
STEP_STATIC = 0
STEP_DYNAMIC = 1
