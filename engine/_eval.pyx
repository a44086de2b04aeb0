# cython: language_level=3, cdivision=True, nonecheck=False
"""The Cython hot path: evaluates requests over compiled decision tables.

Semantics are exactly those of `engine.pyeval.TableEvaluator` (its pure-Python twin) and of
the reference interpreter. Per request, each dict is read in one pass over its entries (a trie
of the paths the policy reads, which includes the AuthZEN shape checks) into borrowed
references; request strings are looked up in the intern table only where an id is needed
(data keys, roles, long policy lists). Decisions are shared objects, built once: a plain
allow or deny is found by integer keys, one that carries evaluation errors or an explanation
by a small bytes key.
"""

from array import array
from collections.abc import Mapping
import mmap
import time

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_Check, PyUnicode_Tailmatch
from libc.math cimport fabs
from libc.stdint cimport int32_t, int64_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from layergate.dsl.literals import MAX_EXACT_INTEGER, parse_address, parse_network

from layergate.engine import opcodes as _op
from layergate.engine.decision import EvalError, LayerResult, combine, invalid_request_decision
from layergate.engine.pyeval import error_message
from layergate.engine.request import (
    RequestError, check_semantic, merge_defaults, normalize_caller, normalize_request,
)

cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object p, object key) except? NULL
    PyObject* lg_dict_lookup "PyDict_GetItemWithError"(object p, object key)  # NULL: see errors
    bint PyBool_Check(object o)
    bint PyLong_Check(PyObject* o)
    bint PyFloat_Check(PyObject* o)
    bint PyList_Check(PyObject* o)
    bint PyDict_Check(PyObject* o)
    bint PyDict_CheckExact(PyObject* o)
    bint PyUnicode_CheckExact(PyObject* o)
    double PyLong_AsDouble(PyObject* o)
    void PyErr_Clear()
    PyObject* PyErr_Occurred()
    int PyObject_IsInstance(PyObject* o, PyObject* cls)
    double PyFloat_AS_DOUBLE(PyObject* o)
    long long PyLong_AsLongLong(PyObject* o)
    unsigned long long PyLong_AsUnsignedLongLong(PyObject* o) except? 0
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject* o)
    int PyUnicode_KIND(PyObject* o)
    void* PyUnicode_DATA(PyObject* o)
    unsigned int PyUnicode_READ_CHAR(PyObject* o, Py_ssize_t index)
    PyObject* Py_True
    PyObject* Py_False
    PyObject* Py_None
    PyObject* PyTuple_GET_ITEM(object t, Py_ssize_t i)
    Py_hash_t PyObject_Hash(PyObject* o) except? -1
    int PyDict_Next(PyObject* p, Py_ssize_t* pos, PyObject** key, PyObject** value) noexcept
    ctypedef struct PyListObject:
        PyObject** ob_item
    ctypedef struct PyASCIIObject:
        Py_hash_t hash  # cached; -1 until first computed (always set for a dict's keys)

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define LG_PREFETCH(address) __builtin_prefetch(address)
    #else
    #define LG_PREFETCH(address) ((void)0)
    #endif
    """
    void LG_PREFETCH(const void* address) noexcept  # a hint: never faults, never required

cdef extern from *:
    """
    /* A fast, unseeded hash of a string's stored code units, for lookups in the evaluator's
       own tables, which hold only policy and data strings (a request cannot add to them, so
       it cannot lengthen their probe chains). The mixing is wyhash's: short texts take a few
       overlapping loads, never a byte past the end. */
    static inline uint64_t lg_load8(const unsigned char* p) {
        uint64_t v; memcpy(&v, p, 8); return v;
    }
    static inline uint64_t lg_load4(const unsigned char* p) {
        uint32_t v; memcpy(&v, p, 4); return v;
    }
    static inline uint64_t lg_mum(uint64_t a, uint64_t b) {
    #if defined(__SIZEOF_INT128__)
        __uint128_t r = (__uint128_t)a * b;
        return (uint64_t)r ^ (uint64_t)(r >> 64);
    #else
        uint64_t ha = a >> 32, hb = b >> 32, la = (uint32_t)a, lb = (uint32_t)b;
        uint64_t rh = ha * hb, rm0 = ha * lb, rm1 = hb * la, rl = la * lb, t = rl + (rm0 << 32);
        uint64_t lo = t + (rm1 << 32), hi = rh + (rm0 >> 32) + (rm1 >> 32) + (t < rl) + (lo < t);
        return lo ^ hi;
    #endif
    }
    static inline uint64_t lg_hash_bytes(const unsigned char* p, size_t n, uint64_t seed) {
        const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
        uint64_t a, b;
        size_t i = n;
        seed ^= lg_mum(seed ^ k0, k1);
        if (n <= 16) {
            if (n >= 4) {
                a = (lg_load4(p) << 32) | lg_load4(p + ((n >> 3) << 2));
                b = (lg_load4(p + n - 4) << 32) | lg_load4(p + n - 4 - ((n >> 3) << 2));
            } else if (n > 0) {
                a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
                b = 0;
            } else {
                a = b = 0;
            }
        } else {
            while (i > 16) {
                seed = lg_mum(lg_load8(p) ^ k1, lg_load8(p + 8) ^ seed);
                p += 16;
                i -= 16;
            }
            a = lg_load8(p + i - 16);
            b = lg_load8(p + i - 8);
        }
        return lg_mum(k1 ^ n, lg_mum(a ^ k1, b ^ seed));
    }
    /* memcmp(a, b, n) == 0, inline for short texts: a few overlapping loads, never a byte
       past either end. */
    static inline int lg_same_bytes(const unsigned char* a, const unsigned char* b, size_t n) {
        if (n >= 8 && n <= 16) {
            return lg_load8(a) == lg_load8(b) && lg_load8(a + n - 8) == lg_load8(b + n - 8);
        }
        if (n >= 4 && n < 8) {
            return lg_load4(a) == lg_load4(b) && lg_load4(a + n - 4) == lg_load4(b + n - 4);
        }
        if (n < 4) {
            return n == 0 || (a[0] == b[0] && a[n >> 1] == b[n >> 1] && a[n - 1] == b[n - 1]);
        }
        return memcmp(a, b, n) == 0;
    }
    static inline uint64_t lg_text_hash(PyObject* text) {
        /* CPython keeps equal strings in the same kind, so equal texts hash alike. */
        int kind = PyUnicode_KIND(text);
        return lg_hash_bytes((const unsigned char*)PyUnicode_DATA(text),
                             (size_t)PyUnicode_GET_LENGTH(text) * kind, (uint64_t)kind);
    }
    """
    uint64_t lg_text_hash(PyObject* text) noexcept
    bint lg_same_bytes(const void* a, const void* b, size_t n) noexcept

cdef extern from *:
    """
    /* Where a dict's entries are, so that a loop reads them in place without PyDict_Next's
       call and per-entry bookkeeping; NULL: read it by PyDict_Next. On CPython 3.11 a
       combined dict's entries are (hash, key, value) or, with only str keys, (key, value);
       the layout is CPython 3.11's PyDictKeysObject (Include/internal/pycore_dict.h). Any
       other version, and split (instance) dicts, take PyDict_Next. The place and `count` are
       those of this moment: the reader runs no code that could change the dict meanwhile. */
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && !defined(PYPY_VERSION)
    #define LG_DICT_ENTRIES 1
    typedef struct {
        Py_ssize_t dk_refcnt;
        uint8_t dk_log2_size;
        uint8_t dk_log2_index_bytes;
        uint8_t dk_kind;  /* 0: general entries (hash, key, value); else (key, value) */
        uint32_t dk_version;
        Py_ssize_t dk_usable;
        Py_ssize_t dk_nentries;
        char dk_indices[];
    } lg_dict_keys;
    #else
    #define LG_DICT_ENTRIES 0
    #endif
    static int lg_dict_entries = LG_DICT_ENTRIES;  /* 0: always PyDict_Next (tests) */

    static inline PyObject** lg_dict_entries_at(PyObject* op, Py_ssize_t* count,
                                                Py_ssize_t* width) {
    #if LG_DICT_ENTRIES
        PyDictObject* dict = (PyDictObject*)op;
        if (lg_dict_entries && dict->ma_values == NULL) {
            lg_dict_keys* keys = (lg_dict_keys*)dict->ma_keys;
            *count = keys->dk_nentries;
            *width = keys->dk_kind == 0 ? 3 : 2;
            return (PyObject**)(keys->dk_indices + ((size_t)1 << keys->dk_log2_index_bytes))
                   + (*width - 2);  /* at the key of entry 0 */
        }
    #endif
        *count = 0;
        *width = 0;
        return NULL;
    }

    /* 1 when a lookup in the dict by an exact str may run code of its keys (a key that is
       not an exact str: CPython 3.11 keeps only exact-str keys in its unicode and split
       kinds), 0 when it cannot, -1 when this build cannot tell (the caller looks). */
    static inline int lg_dict_odd_keys(PyObject* op) {
    #if LG_DICT_ENTRIES
        return ((lg_dict_keys*)((PyDictObject*)op)->ma_keys)->dk_kind == 0;
    #else
        return -1;
    #endif
    }
    """
    PyObject** lg_dict_entries_at(PyObject* op, Py_ssize_t* count, Py_ssize_t* width) noexcept
    int lg_dict_odd_keys(PyObject* op) noexcept
    int lg_dict_entries
    int LG_DICT_ENTRIES

cdef dict _EMPTY = {}


DEF FEW_ROLES = 3  # a list of this many roles or fewer is tested role by role (see Constant)


cdef struct Constant:
    # Everything a read of a constant needs, in one place.
    Val value       # a list: i is the constant's own index, obj NULL
    int32_t items   # a list: its first item in list_items
    int32_t length  # a list: its length
    int32_t roles   # a list of role names: its bitset, else -1
    int32_t nfew    # a list of role names that holds at most FEW_ROLES roles: how many, else -1
    int32_t few[FEW_ROLES]  # those roles' indices (a grants() test reads them, not the bitset)


cdef struct Cell:
    # One pre-joined data cell, its constant copied in: an entity's cells sit side by side.
    int32_t error  # error code, or -1
    int32_t text   # the path text of the error
    Val value


cdef struct TextSlot:
    # A slot of the open-addressing table text -> intern id; text NULL when free.
    uint64_t hash  # lg_text_hash of the text
    PyObject* text
    int64_t sid


cdef struct EntityKey:
    # A slot of the open-addressing table (document, key text) -> row; text NULL when free.
    uint64_t hash  # lg_text_hash of the text
    PyObject* text
    int32_t doc
    int32_t row


cdef struct Net:
    # A parsed network: version -1 when the text is not one.
    int version
    int prefix
    uint64_t hi
    uint64_t lo


cdef struct NetSlot:
    # A slot of the open-addressing table string id -> parsed network; sid -1 when free.
    int64_t sid
    Net net


cdef inline PyObject* _get(object mapping, object key) except? NULL:
    """A borrowed dict item, NULL when absent (keys are strings: lookups cannot fail)."""
    return PyDict_GetItemWithError(mapping, key)
cdef tuple ROOTS = tuple(_op.ROOTS)
cdef int CACHE_LIMIT = 100_000
cdef double MAX_EXACT = MAX_EXACT_INTEGER  # 2^53 - 1: past it, integers round as doubles
DEF LAZY = -2  # a request string whose intern id has not been looked up yet
DEF ALLOW_SLOTS = 4096
DEF KEY_ORDER = 8  # the reader remembers the first this many keys of the last dict per node
DEF WINDOW = 16  # check_batch reads this many items ahead, prefetching their entities' data
DEF ROUTE_SLOTS = 1024  # table of kept (action, resource type) routes; at most half filled
DEF NET_SLOTS_MIN = 256  # the table of parsed networks doubles when half full, up to
cdef int net_slots_max = 1 << 18  # this many slots (8 MiB); half full at that size, emptied


def _read_dict_entries(bint enabled):
    """Read dicts' entries in place where this build can (else PyDict_Next); for tests.
    Returns whether they were, and whether this build can at all."""
    global lg_dict_entries
    old = bool(lg_dict_entries)
    lg_dict_entries = enabled and LG_DICT_ENTRIES
    return old, bool(LG_DICT_ENTRIES)


cdef bint huge_tables = True
DEF HUGE_TABLE_MIN = 256 << 10  # tables this large are carved from mappings of ARENA_CHUNK
DEF ARENA_CHUNK = 8 << 20        # (or more) that the kernel may back with huge pages
DEF HUGE_PAGE = 2 << 20
cdef bint _CAN_MAP = all(hasattr(mmap, name) for name in
                         ("MAP_PRIVATE", "MAP_ANONYMOUS", "MADV_HUGEPAGE"))


def _huge_table_pages(bint enabled):
    """Back new evaluators' tables with huge pages where the kernel allows; for benchmarks.
    Returns the old setting."""
    global huge_tables
    old, huge_tables = huge_tables, enabled
    return old


def _limit_parsed_networks(int slots):
    """Set the largest table of parsed networks (a power of two); for tests. Returns the old."""
    global net_slots_max
    old, net_slots_max = net_slots_max, max(slots, NET_SLOTS_MIN)
    return old
DEF TOP = 0  # path trie node of the request itself; node 1 + r is request root r
# The fields every request is checked for (AuthZEN shape), read in the same pass as the slots.
cdef tuple SHAPE_PATHS = ((0, "type"), (0, "id"), (0, "properties"), (1, "name"),
                          (2, "type"), (2, "id"), (2, "properties"))


class CompiledMismatch(RuntimeError):
    """The tables and this extension disagree on the opcode numbering (a build problem)."""


def _check_opcodes():
    expected = {"CONST": CONST, "FAIL": FAIL, "SLOT": SLOT, "DATA_COL": DATA_COL, "WALK": WALK,
                "NOW": NOW, "AND": AND, "OR": OR, "NOT": NOT, "TRUTH": TRUTH, "EQ": EQ,
                "NE": NE, "LT": LT, "LE": LE, "GT": GT, "GE": GE, "MEMBER": MEMBER,
                "STARTS_WITH": STARTS_WITH, "ENDS_WITH": ENDS_WITH, "GLOB": GLOB,
                "CIDR": CIDR, "INTERSECTS": INTERSECTS, "SUBSET": SUBSET, "GRANTS": GRANTS,
                "TIME": TIME, "PRESENT": PRESENT, "T_STR": T_STR, "T_NUM": T_NUM,
                "T_BOOL": T_BOOL, "T_TIME": T_TIME, "T_LIST": T_LIST, "T_OBJ": T_OBJ,
                "T_OTHER": T_OTHER, "E_MISSING": E_MISSING,
                "E_UNKNOWN_ENTITY": E_UNKNOWN_ENTITY, "E_TYPE": E_TYPE, "E_INVALID": E_INVALID,
                "EFFECT_DENY": EFFECT_DENY, "STEP_STATIC": STEP_STATIC}
    for name, value in expected.items():
        if getattr(_op, name) != value:
            raise CompiledMismatch(f"opcode {name}: extension {value}, "
                                   f"python {getattr(_op, name)}")


_check_opcodes()


@cython.final
cdef class _Request:
    """Per-call scratch space: converted slots, the grant mask, errors. Reused across a batch."""

    cdef PyObject* roots[6]
    cdef int64_t now
    cdef bint now_ready  # read from the clock once per call, when a rule first asks
    cdef int64_t action
    cdef int64_t resource_type
    cdef int nslots
    cdef signed char* slot_state  # 0: not converted yet, 1: value, 2: error
    cdef Val* slot_val
    cdef int32_t* slot_err
    cdef int32_t* slot_text
    cdef int words
    cdef int32_t* buckets  # per layer, the rules for this action and resource type (or -1)
    cdef uint64_t* mask    # the roles granting this action on this resource type
    cdef int32_t* own_buckets  # where those are computed when the evaluator's cache is full
    cdef uint64_t* own_mask
    cdef int err_code
    cdef int32_t err_text
    cdef int nerrors
    cdef int32_t* errors  # (rule, code, text) per evaluation error, at most one per rule
    cdef int32_t* key     # scratch for the decision cache key
    cdef PyObject* row_text  # the last data key looked up in this request, its document, row
    cdef int row_doc
    cdef int row
    cdef bint row_lists_loading  # the items and bitsets of its lists are on their way
    cdef Cell* lead_row  # the lead entity's cells once found and its lists on their way
    cdef PyObject* lead_text  # the lead key whose text hash is in lead_hash, or NULL
    cdef uint64_t lead_hash
    cdef object keep  # the normalized request when the input needed the Python path
    cdef object caller
    cdef object refused  # check_batch: the decision for an item that could not be read
    cdef bint foreign  # it holds objects of other types than the JSON ones (see _fill)
    cdef bint private  # it is read from a private copy (`keep`): no code of its can change it

    def __cinit__(self, int nslots, int words, int nrules, int nlayers):
        self.nslots = nslots
        self.words = words
        self.errors = <int32_t*>malloc(3 * max(nrules, 1) * sizeof(int32_t))
        self.key = <int32_t*>malloc((2 + 2 * nlayers + 3 * max(nrules, 1)) * sizeof(int32_t))
        self.slot_state = <signed char*>malloc(max(nslots, 1) * sizeof(signed char))
        self.slot_val = <Val*>malloc(max(nslots, 1) * sizeof(Val))
        self.slot_err = <int32_t*>malloc(max(nslots, 1) * sizeof(int32_t))
        self.slot_text = <int32_t*>malloc(max(nslots, 1) * sizeof(int32_t))
        self.own_buckets = <int32_t*>malloc(max(nlayers, 1) * sizeof(int32_t))
        self.own_mask = <uint64_t*>malloc(max(words, 1) * sizeof(uint64_t))
        if not (self.slot_state and self.slot_val and self.slot_err and self.slot_text
                and self.own_buckets and self.own_mask and self.errors and self.key):
            raise MemoryError()

    def __dealloc__(self):
        free(self.slot_state)
        free(self.slot_val)
        free(self.slot_err)
        free(self.slot_text)
        free(self.own_buckets)
        free(self.own_mask)
        free(self.errors)
        free(self.key)

    cdef void reset(self):
        memset(self.slot_state, 0, max(self.nslots, 1))
        self.row_text = NULL
        self.lead_row = NULL
        self.lead_text = NULL
        self.nerrors = 0
        self.keep = None
        self.refused = None
        self.foreign = False
        self.private = False


@cython.final
cdef class Evaluator:
    """Decides requests over `Tables` in C. Safe to share between threads."""

    cdef readonly object tables
    cdef readonly str revision
    cdef public object clock
    cdef tuple strings
    cdef tuple texts
    cdef tuple rule_ids
    cdef tuple layer_names
    cdef tuple objects
    cdef dict sids              # text -> intern id, for str subclasses (found as a dict would)
    cdef TextSlot* text_slots   # the same for exact str, by text hash
    cdef uint64_t text_mask
    cdef int nlayers, nrules, nslots, words
    cdef object _keep  # the memory behind the pointers below
    cdef char* arena_at  # the free part of the last mapping in `_keep`
    cdef Py_ssize_t arena_left
    cdef int32_t* node_op
    cdef int32_t* node_a
    cdef int32_t* node_b
    cdef int32_t* node_c
    cdef int32_t* node_text
    cdef int32_t* layer_key_start
    cdef int64_t* index_keys
    cdef int32_t* index_bucket
    cdef int32_t* bucket_start
    cdef int32_t* bucket_rules
    cdef int32_t* rule_effect
    cdef int32_t* rule_cond
    cdef int32_t* slot_root
    cdef int32_t* slot_step_start
    cdef int32_t* slot_step_text
    cdef tuple slot_keys
    cdef int32_t* step_kind
    cdef int32_t* step_key
    cdef int32_t* step_text
    cdef int32_t* step_missing
    cdef Constant* consts
    cdef int32_t* list_items
    cdef int32_t* column_doc
    cdef int32_t* column_key_text
    cdef int32_t* column_pos     # column -> its place in a row of its document
    cdef int32_t* doc_width      # document -> columns per row
    cdef int64_t* doc_base       # document -> its first cell
    cdef Cell* cells             # row-major: doc_base[d] + row * doc_width[d] + column_pos[c]
    cdef EntityKey* entity_keys
    cdef Py_ssize_t entity_mask
    cdef NetSlot* nets           # parsed networks by string id (open addressing)
    cdef object net_buffer       # the memory behind `nets`
    cdef int net_mask
    cdef int nnets
    cdef int32_t* role_of_sid   # dense: string id -> role or -1
    cdef int64_t* grant_keys
    cdef int32_t* grant_bitset
    cdef int ngrants
    cdef uint64_t* bitset_words
    cdef int64_t* route_keys     # open addressing over (action, resource type): -1 when free
    cdef int32_t* route_buckets  # ROUTE_SLOTS x nlayers
    cdef uint64_t* route_masks   # ROUTE_SLOTS x words
    cdef int nroutes
    cdef list deny_decisions    # layer * (nrules + 1) + rule + 1 -> shared Decision
    cdef list allow_decisions   # shared allow Decisions, found through allow_slots
    cdef int32_t* allow_slots   # open addressing: ALLOW_SLOTS x (decision index, rule per layer)
    cdef int ncells             # request slots, then the shape fields that are not slots
    cdef int32_t* shape_cell    # SHAPE_PATHS -> cell
    cdef int32_t* trie_cell     # path trie node -> cell, or -1
    cdef char* trie_branch      # node has children
    cdef int trie_mask
    cdef int32_t* probe_parent  # open addressing over (parent node, key): -1 when free
    cdef int32_t* probe_child
    cdef int64_t* probe_hash
    cdef tuple probe_keys       # the key str objects, by probe position
    cdef list probe_seen        # the last equal key object met there (JSON decoders reuse them)
    cdef PyObject** seen_keys   # probe_seen's items (the list is never resized)
    cdef list order_keys        # node x KEY_ORDER: the key met at each place of the last dict
    cdef PyObject** order_key   # read at that node (order_keys' items, never resized), and
    cdef int32_t* order_child   # the child it led to
    cdef int32_t* node_lead     # a DATA_COL node of the lead document keyed by the lead slot:
                                # its column's place in a row (else -1)
    cdef dict decision_cache  # decisions with errors, or explained: key bytes -> Decision
    cdef dict address_cache
    cdef dict network_cache  # networks that are not policy strings (request values)
    # Idle scratch spaces: a call takes one (or makes one) and gives it back. `idle` holds one
    # without the list's resizing; `spare` the others while calls overlap (threads).
    cdef _Request idle
    cdef list spare
    # The (document, request slot) most rules read data by, e.g. data.accounts[subject.id]:
    # check_batch finds that entity for a window of items before deciding any of them.
    cdef int lead_doc, lead_slot

    def __init__(self, tables, clock=time.time):
        self.tables = tables
        self.revision = tables.revision
        self.clock = clock
        self.strings = tuple(tables.strings)
        self.texts = tuple(tables.texts)
        self.rule_ids = tuple(tables.rule_ids)
        self.layer_names = tuple(tables.layer_names)
        self.objects = tuple(tables.objects)
        self.sids = {text: i for i, text in enumerate(self.strings)}
        self.nlayers = len(self.layer_names)
        self.nrules = len(self.rule_ids)
        self.nslots = len(tables.slot_root)
        self.words = tables.role_words
        self.ngrants = len(tables.grant_keys)
        self.slot_keys = tuple(self.strings[k] for k in tables.slot_keys)
        self._keep = []
        self._build_text_slots()
        self.node_op = self._i32(tables.node_op)
        self.node_a = self._i32(tables.node_a)
        self.node_b = self._i32(tables.node_b)
        self.node_c = self._i32(tables.node_c)
        self.node_text = self._i32(tables.node_text)
        self.layer_key_start = self._i32(tables.layer_key_start)
        self.index_keys = self._i64(tables.index_keys)
        self.index_bucket = self._i32(tables.index_bucket)
        self.bucket_start = self._i32(tables.bucket_start)
        self.bucket_rules = self._i32(tables.bucket_rules)
        self.rule_effect = self._i32(tables.rule_effect)
        self.rule_cond = self._i32(tables.rule_cond)
        self.slot_root = self._i32(tables.slot_root)
        self.slot_step_start = self._i32(tables.slot_step_start)
        self.slot_step_text = self._i32(tables.slot_step_text)
        self.step_kind = self._i32(tables.step_kind)
        self.step_key = self._i32(tables.step_key)
        self.step_text = self._i32(tables.step_text)
        self.step_missing = self._i32(tables.step_missing)
        self._build_consts(tables)
        self.list_items = self._i32(tables.list_items)
        self.column_doc = self._i32(tables.column_doc)
        self.column_key_text = self._i32(tables.column_key_text)
        self._build_entities(tables)
        self._new_networks(NET_SLOTS_MIN)
        roles = array("i", [-1]) * max(len(self.strings), 1)
        for r, sid in enumerate(tables.role_names):
            roles[sid] = r
        self.role_of_sid = self._i32(roles)
        self.grant_keys = self._i64(tables.grant_keys)
        self.grant_bitset = self._i32(tables.grant_bitset)
        words = array("Q", [w & 0xFFFF_FFFF_FFFF_FFFF for w in tables.bitset_words] or [0])
        self.bitset_words = <uint64_t*>self._copied(words)
        self.route_keys = self._i64(array("q", [-1]) * ROUTE_SLOTS)
        self.route_buckets = <int32_t*>self._zeroed(ROUTE_SLOTS * max(self.nlayers, 1)
                                                    * sizeof(int32_t))
        self.route_masks = <uint64_t*>self._zeroed(ROUTE_SLOTS * max(self.words, 1)
                                                   * sizeof(uint64_t))
        self.nroutes = 0
        self.deny_decisions = [None] * (self.nlayers * (self.nrules + 1))
        self.allow_decisions = []
        self.allow_slots = self._i32(array("i", [-1]) * (ALLOW_SLOTS * (self.nlayers + 1)))
        self._build_trie(tables)
        self._find_lead_key(tables)
        self.decision_cache = {}
        self.address_cache = {}
        self.network_cache = {}
        self.idle = None
        self.spare = []

    cdef void _build_trie(self, tables) except *:
        """A trie of the request paths the policy reads, so one pass over each dict fills them."""
        nodes = {(TOP, key): 1 + r for r, key in enumerate(ROOTS)
                 if key != "caller"}  # the caller is not read from the request body
        cells = [-1] * 7
        for slot in range(self.nslots):
            node = 1 + self.slot_root[slot]
            for step in range(self.slot_step_start[slot], self.slot_step_start[slot + 1]):
                node = nodes.setdefault((node, self.slot_keys[step]), len(cells))
                if node == len(cells):
                    cells.append(-1)
            if cells[node] < 0:
                cells[node] = slot
        self.ncells = self.nslots
        shape = array("i", [0] * len(SHAPE_PATHS))
        for k, (root, key) in enumerate(SHAPE_PATHS):
            node = nodes.setdefault((1 + root, key), len(cells))
            if node == len(cells):
                cells.append(-1)
            if cells[node] < 0:
                cells[node] = self.ncells
                self.ncells += 1
            shape[k] = cells[node]
        self.shape_cell = self._i32(shape)
        self.trie_cell = self._i32(cells)
        self.trie_branch = self._zeroed(len(cells))
        for parent, _ in nodes:
            self.trie_branch[parent] = 1
        size = 8
        while size < 2 * len(nodes):
            size *= 2
        self.trie_mask = size - 1
        parents, children = array("i", [-1]) * size, array("i", [-1]) * size
        hashes = array("q", [0]) * size
        keys = [None] * size
        for (parent, key), child in nodes.items():
            key_hash = hash(key)
            at = self._probe_start(parent, key_hash)
            while parents[at] >= 0:
                at = (at + 1) & self.trie_mask
            parents[at], children[at], hashes[at], keys[at] = parent, child, key_hash, key
        self.probe_parent = self._i32(parents)
        self.probe_child = self._i32(children)
        self.probe_hash = self._i64(hashes)
        self.probe_keys = tuple(keys)
        self.probe_seen = list(keys)
        self.seen_keys = (<PyListObject*>self.probe_seen).ob_item
        self.order_keys = [None] * (len(cells) * KEY_ORDER)
        self.order_key = (<PyListObject*>self.order_keys).ob_item
        self.order_child = self._i32(array("i", [-1]) * (len(cells) * KEY_ORDER))

    cdef inline int _probe_start(self, int parent, Py_hash_t key_hash) noexcept:
        return <int>((<uint64_t>key_hash + <uint64_t>parent * 0x9E3779B97F4A7C15ULL)
                     & <uint64_t>self.trie_mask)

    cdef inline int _child(self, int parent, PyObject* key) except -2:
        """The trie node under `parent` for this key, or -1 if the policy never reads it (a
        str subclass is found by its own hash, as a dict lookup would find it)."""
        cdef Py_hash_t key_hash = (<PyASCIIObject*>key).hash
        if key_hash == -1 or not PyUnicode_CheckExact(key):
            key_hash = PyObject_Hash(key)
        cdef int at = self._probe_start(parent, key_hash)
        cdef PyObject* known
        while self.probe_parent[at] >= 0:
            if self.probe_parent[at] == parent and self.probe_hash[at] == <int64_t>key_hash:
                if self.seen_keys[at] == key:
                    return self.probe_child[at]
                known = PyTuple_GET_ITEM(self.probe_keys, at)
                if known == key or _same_text(known, key):
                    self.probe_seen[at] = <object>key
                    return self.probe_child[at]
            at = (at + 1) & self.trie_mask
        return -1

    cdef int _fill(self, _Request req, PyObject* mapping, int node) except -1:
        """One pass over a dict: every value the policy reads lands in its cell.

        Reading the caller's own dicts, it stops at the first object that could run code of
        its own (a str subclass key or value, any object not of the JSON types), before that
        code runs, and marks the request `foreign`: it is read again from a private copy,
        which such code cannot change (so the dict is never changed under this loop)."""
        cdef Py_ssize_t count, width, pos = 0
        cdef PyObject** entry = lg_dict_entries_at(mapping, &count, &width)
        cdef PyObject** end = entry + count * width if entry != NULL else NULL
        cdef PyObject* key
        cdef PyObject* value
        cdef PyObject* next_key  # (PyDict_Next's: key and value, whose addresses are never
        cdef PyObject* next_value  # taken, can stay in registers)
        cdef int child, cell, place = node * KEY_ORDER, last = place + KEY_ORDER
        while True:
            if entry != NULL:  # walked in place (CPython 3.11)
                if entry == end:
                    return 0
                key = entry[0]
                value = entry[1]
                entry += width
                if value == NULL:
                    continue  # a deleted entry
            elif PyDict_Next(mapping, &pos, &next_key, &next_value):
                key = next_key
                value = next_value
            else:
                return 0
            if place < last and self.order_key[place] == key:
                child = self.order_child[place]  # the same key, in the same place, as before
            elif not PyUnicode_Check(<object>key):
                child = -1
            elif not PyUnicode_CheckExact(key):  # a subclass hashes in its own code
                if not req.private:
                    req.foreign = True
                    return 0
                child = self._child(node, key)
            else:
                child = self._child(node, key)
                if place < last:
                    self.order_keys[place] = <object>key
                    self.order_child[place] = child
            place += 1
            if child < 0 or value == Py_None:
                continue  # None reads as absent; the slot walk reports it if a rule asks
            if node == TOP:
                req.roots[child - 1] = value
            cell = self.trie_cell[child]
            if cell >= 0:
                if PyUnicode_CheckExact(value):  # most values: classified here, no call
                    req.slot_val[cell].tag = T_STR
                    req.slot_val[cell].i = LAZY
                    req.slot_val[cell].num = 0.0
                    req.slot_val[cell].obj = value
                elif PyDict_CheckExact(value):  # (the `properties` objects: no call either)
                    req.slot_val[cell].tag = T_OBJ
                    req.slot_val[cell].i = 0
                    req.slot_val[cell].num = 0.0
                    req.slot_val[cell].obj = value
                else:
                    if not req.private and not _plain(value, True):
                        req.foreign = True
                        return 0
                    req.slot_val[cell] = self._classify(value)
                req.slot_state[cell] = 1
                if cell == self.lead_slot:  # its entity is looked up first: start loading
                    self._prefetch_entity_key(req, False)
            if self.trie_branch[child] and PyDict_Check(value):
                self._fill(req, value, child)
                if req.foreign:
                    return 0

    cdef void _build_text_slots(self) except *:
        """Index the intern table by text hash (a dict lookup hashes a new str with SipHash)."""
        cdef Py_ssize_t size = 1, sid
        cdef uint64_t at, text_hash
        cdef PyObject* text
        while size < 2 * len(self.strings):
            size <<= 1
        self.text_mask = size - 1
        self.text_slots = <TextSlot*>self._zeroed(size * sizeof(TextSlot))
        for sid in range(len(self.strings)):
            text = PyTuple_GET_ITEM(self.strings, sid)
            text_hash = lg_text_hash(text)
            at = text_hash & self.text_mask
            while self.text_slots[at].text != NULL:
                at = (at + 1) & self.text_mask
            self.text_slots[at].hash = text_hash
            self.text_slots[at].text = text
            self.text_slots[at].sid = sid

    cdef void _find_lead_key(self, tables) except *:
        """The (document, slot) pair most data reads are keyed by, or -1s if none is a slot."""
        uses = {}
        for n, code in enumerate(tables.node_op):
            key = tables.node_b[n]
            if code == DATA_COL and tables.node_op[key] == SLOT:
                pair = (tables.column_doc[tables.node_a[n]], tables.node_a[key])
                uses[pair] = uses.get(pair, 0) + 1
        self.lead_doc, self.lead_slot = max(uses, key=uses.get) if uses else (-1, -1)
        places = array("i", [-1]) * max(len(tables.node_op), 1)
        for n, code in enumerate(tables.node_op):
            key = tables.node_b[n]
            if (code == DATA_COL and tables.node_op[key] == SLOT
                    and tables.node_a[key] == self.lead_slot
                    and tables.column_doc[tables.node_a[n]] == self.lead_doc):
                places[n] = self.column_pos[tables.node_a[n]]
        self.node_lead = self._i32(places)

    cdef void _build_consts(self, tables) except *:
        """One record per constant (the tables keep one array per field)."""
        cdef Py_ssize_t c
        cdef Constant* record
        self.consts = <Constant*>self._zeroed(max(len(tables.const_tag), 1) * sizeof(Constant))
        for c in range(len(tables.const_tag)):
            record = &self.consts[c]
            record.value.tag = tables.const_tag[c]
            record.value.i = tables.const_int[c]
            record.value.num = tables.const_num[c]
            record.length = tables.const_len[c]
            record.roles = tables.const_roles[c]
            record.nfew = -1
            if record.roles >= 0:
                members = _bits(tables.bitset_words, record.roles, self.words, FEW_ROLES)
                if len(members) <= FEW_ROLES:
                    record.nfew = len(members)
                    for k, role in enumerate(members):
                        record.few[k] = role
            if record.value.tag == T_STR:
                record.value.obj = PyTuple_GET_ITEM(self.strings, record.value.i)
            elif record.value.tag == T_LIST:
                record.items = tables.const_int[c]
                record.value.i = c
            elif record.value.tag == T_OBJ:
                record.value.obj = PyTuple_GET_ITEM(self.objects, record.value.i)

    cdef void _build_entities(self, tables) except *:
        """Lay the pre-joined data out row by row (the tables keep it column by column), so the
        cells one entity's rules read share cache lines, and index the rows by key text."""
        cdef int ndocs = len(tables.doc_entity_start) - 1
        cdef int ncolumns = len(tables.column_doc)
        cdef int c, d, row, width
        cdef Py_ssize_t nentities = tables.doc_entity_start[ndocs], size = 1, slot
        cdef Cell* cell
        cdef PyObject* text
        cdef uint64_t text_hash
        widths = [0] * max(ndocs, 1)
        positions = []
        for c in range(ncolumns):
            positions.append(widths[tables.column_doc[c]])
            widths[tables.column_doc[c]] += 1
        bases = []
        total = 0
        for d in range(ndocs):
            bases.append(total)
            total += widths[d] * (tables.doc_entity_start[d + 1] - tables.doc_entity_start[d])
        self.column_pos = self._i32(positions)
        self.doc_width = self._i32(widths)
        self.doc_base = self._i64(bases)
        self.cells = <Cell*>self._zeroed(max(total, 1) * sizeof(Cell))
        cell_const, cell_error, cell_text = tables.cell_const, tables.cell_error, tables.cell_text
        for c in range(ncolumns):
            d = tables.column_doc[c]
            width = widths[d]
            first = tables.column_cell_start[c]
            for row in range(tables.column_cell_start[c + 1] - first):
                cell = &self.cells[bases[d] + row * width + positions[c]]
                cell.error = cell_error[first + row]
                cell.text = cell_text[first + row]
                if cell.error < 0:
                    cell.value = self._const(cell_const[first + row])
        while size < 2 * nentities:
            size <<= 1
        self.entity_mask = size - 1
        self.entity_keys = <EntityKey*>self._zeroed(size * sizeof(EntityKey))
        for d in range(ndocs):
            start = tables.doc_entity_start[d]
            for row, sid in enumerate(tables.doc_entities[start:tables.doc_entity_start[d + 1]]):
                text = PyTuple_GET_ITEM(self.strings, sid)
                text_hash = lg_text_hash(text)
                slot = _entity_slot(text_hash, d, self.entity_mask)
                while self.entity_keys[slot].text != NULL:
                    slot = (slot + 1) & self.entity_mask
                self.entity_keys[slot].hash = text_hash
                self.entity_keys[slot].text = text
                self.entity_keys[slot].doc = d
                self.entity_keys[slot].row = row

    cdef int _entity_row(self, int doc, PyObject* text) except -2:
        """The row of entity `text` in document `doc`, or -1 (found as a dict would find it:
        a str subclass by its own hash and equality, which may raise)."""
        cdef PyObject* found
        if not PyUnicode_CheckExact(text):
            found = PyDict_GetItemWithError(self.sids, <object>text)
            if found == NULL:
                return -1
            text = PyTuple_GET_ITEM(self.strings, PyLong_AsLongLong(found))
        return self._entity_row_of(doc, text, lg_text_hash(text))

    cdef int _entity_row_of(self, int doc, PyObject* text, uint64_t text_hash) noexcept:
        """The row of entity `text` (an exact str with this text hash) in `doc`, or -1."""
        cdef Py_ssize_t slot = _entity_slot(text_hash, doc, self.entity_mask)
        cdef EntityKey* key
        while True:
            key = &self.entity_keys[slot]
            if key.text == NULL:
                return -1
            if key.hash == text_hash and key.doc == doc:
                self._prefetch_row(doc, key.row)  # while the key texts are compared
                if key.text == text or _same_text(key.text, text):
                    return key.row
            slot = (slot + 1) & self.entity_mask

    cdef inline void _prefetch_row(self, int doc, int row) noexcept:
        """Start loading an entity's cells."""
        cdef char* first = <char*>&self.cells[self.doc_base[doc] + row * self.doc_width[doc]]
        cdef Py_ssize_t offset
        for offset in range(0, self.doc_width[doc] * sizeof(Cell), 64):
            LG_PREFETCH(first + offset)

    cdef char* _zeroed(self, Py_ssize_t nbytes) except NULL:
        """Zero-filled memory, 64-byte aligned, freed with the evaluator. Large tables are
        carved from anonymous mappings the kernel may back with huge pages: at 1,000 roles
        the tables a batch reads at random span about 8 MiB, some 2,000 pages of 4 KiB."""
        cdef char* at
        cdef unsigned char[::1] view
        cdef Py_ssize_t size
        nbytes = max((nbytes + 63) & ~63, 64)
        if not (huge_tables and nbytes >= HUGE_TABLE_MIN and _CAN_MAP):
            buffer = bytearray(nbytes + 63)
            self._keep.append(buffer)
            return <char*>((<uintptr_t><char*>buffer + 63) & ~(<uintptr_t>63))
        if nbytes > self.arena_left:
            size = (max(nbytes, ARENA_CHUNK) + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
            mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            try:
                mapping.madvise(mmap.MADV_HUGEPAGE)
            except OSError:
                pass  # (a kernel without transparent huge pages: ordinary pages serve)
            self._keep.append(mapping)
            view = mapping
            self.arena_at = <char*>&view[0]
            self.arena_left = size
        at = self.arena_at
        self.arena_at += nbytes
        self.arena_left -= nbytes
        return at

    cdef char* _copied(self, values) except NULL:
        """A copy of an array's items in the evaluator's memory."""
        cdef Py_ssize_t nbytes = len(values) * values.itemsize
        cdef char* at = self._zeroed(nbytes)
        cdef unsigned char[::1] view
        if nbytes:
            view = memoryview(values).cast("B")
            memcpy(at, &view[0], nbytes)
        return at

    cdef int32_t* _i32(self, values) except NULL:
        return <int32_t*>self._copied(array("i", values or [0]))

    cdef int64_t* _i64(self, values) except NULL:
        return <int64_t*>self._copied(array("q", values or [0]))

    # ---- the Authorizer signature ----------------------------------------------------------

    cdef _Request _take(self, object caller):
        cdef _Request req = self.idle
        if req is not None:
            self.idle = None
        else:
            req = (self.spare.pop() if self.spare else
                   _Request(self.ncells, self.words, self.nrules, self.nlayers))
        req.caller = normalize_caller(caller) if caller else _EMPTY
        req.now_ready = False
        return req

    cdef void _give_back(self, _Request req):
        """Take it back idle, holding no request objects (each use resets it first)."""
        req.keep = None
        req.caller = None
        req.refused = None
        if self.idle is None:
            self.idle = req
        elif len(self.spare) < 16:
            self.spare.append(req)

    def check(self, request, caller=None, bint explain=False):
        """Decide one request; raises `RequestError` if it is malformed."""
        cdef _Request req = self._take(caller)
        try:
            req.reset()
            self._load(req, request, None)
            try:
                return self._decide(req, explain)
            except _NeedsCopy:  # decided again, from a copy of its own
                req.reset()
                self._load(req, request, None, False, True)
                return self._decide(req, explain)
        finally:
            self._give_back(req)

    def check_batch(self, requests, defaults=None, str semantic="execute_all", caller=None,
                    bint explain=False):
        """Decide many requests in one loop; a malformed item is denied with its field path.

        Items go through in windows: all of a window's items are read and their entities
        looked up, with the memory each will need prefetched a step ahead, before any is
        decided, so the cache misses of a large estate overlap instead of adding up."""
        check_semantic(semantic)
        cdef bint stop_on_deny = semantic == "deny_on_first_deny"
        cdef bint stop_on_permit = semantic == "permit_on_first_permit"
        cdef list items = list(requests)  # the items stay alive while read ahead
        cdef Py_ssize_t total = len(items), start = 0, copy_at = -1
        cdef int j, count
        cdef list window = []
        cdef PyObject* reqs[WINDOW]
        cdef _Request req
        cdef list out = []
        cdef object decision, failure = None
        try:
            for j in range(min(WINDOW, total)):
                window.append(self._take(caller))
                reqs[j] = <PyObject*>window[j]
            while start < total:
                count = <int>min(WINDOW, total - start)
                for j in range(count):
                    req = <_Request>reqs[j]
                    req.reset()
                    try:
                        if not self._load(req, items[start + j], defaults, j > 0,
                                          start + j == copy_at):
                            count = j  # it needs the Python path: first in the next window
                            break
                        if req.private:  # its objects may run code while it is decided: no
                            count = 1        # other item is read by then
                            break
                    except RequestError as exc:
                        req.refused = invalid_request_decision(exc.message, exc.field,
                                                               self.revision)
                    except BaseException as exc:  # raised after the items before it
                        failure = exc
                        count = j
                        break
                for j in range(count):  # (the reader started loading their table slots)
                    self._prefetch_entity_key(<_Request>reqs[j], True)
                for j in range(count):
                    self._find_entity(<_Request>reqs[j])
                for j in range(count):
                    self._prefetch_lists(<_Request>reqs[j], False)
                for j in range(count):
                    self._prefetch_lists(<_Request>reqs[j], True)
                    (<_Request>reqs[j]).row_lists_loading = True
                    self._keep_lead_row(<_Request>reqs[j])
                try:  # (once per window: a try per item costs more than its decision's rules)
                    for j in range(count):
                        req = <_Request>reqs[j]
                        decision = (req.refused if req.refused is not None
                                    else self._decide(req, explain))
                        out.append(decision)
                        if stop_on_deny and not (<object>decision).allowed:
                            return out
                        if stop_on_permit and (<object>decision).allowed:
                            return out
                except _NeedsCopy:  # item j is read again from a copy of its own, first of
                    copy_at = start + j  # the next window
                    count = j
                    failure = None  # (an item after it: read again, in its turn)
                if failure is not None:
                    raise failure
                start += count
            return out
        finally:
            for req in window:
                self._give_back(req)

    cdef inline PyObject* _lead_key(self, _Request req) noexcept:
        """The request's lead key when it is read and an exact str (a str subclass hashes in
        its own code: left to the rule that reads it), else NULL."""
        if (req.refused is not None or self.lead_slot < 0
                or req.slot_state[self.lead_slot] != 1
                or not PyUnicode_CheckExact(req.slot_val[self.lead_slot].obj)):
            return NULL
        return req.slot_val[self.lead_slot].obj

    cdef void _prefetch_entity_key(self, _Request req, bint text) noexcept:
        """Start loading the slot of the entity table the lead key of this request hashes to,
        or (once that is in) the key text kept there."""
        cdef PyObject* key = self._lead_key(req)
        cdef EntityKey* found
        if key == NULL:
            return
        found = &self.entity_keys[_entity_slot(self._lead_hash(req, key), self.lead_doc,
                                               self.entity_mask)]
        if not text:
            LG_PREFETCH(found)
        elif found.hash == req.lead_hash and found.text != NULL:
            LG_PREFETCH(found.text)

    cdef inline uint64_t _lead_hash(self, _Request req, PyObject* key) noexcept:
        """The text hash of the request's lead key, computed once."""
        if req.lead_text != key:
            req.lead_hash = lg_text_hash(key)
            req.lead_text = key
        return req.lead_hash

    cdef int _find_entity(self, _Request req) except -1:
        """Look the lead entity up now (rules find it in the request's memo); the lookup
        starts loading its row."""
        cdef PyObject* key = self._lead_key(req)
        if key != NULL:
            req.row = self._entity_row_of(self.lead_doc, key, self._lead_hash(req, key))
            req.row_text, req.row_doc = key, self.lead_doc
            req.row_lists_loading = False
        return 0

    cdef inline void _keep_lead_row(self, _Request req) noexcept:
        """Once the lead entity's row is found and its lists are on their way, keep where its
        cells are: rules read them straight from there (`_operand`)."""
        cdef PyObject* key = self._lead_key(req)
        if (key != NULL and req.row_text == key and req.row_doc == self.lead_doc
                and req.row >= 0):
            req.lead_row = &self.cells[self.doc_base[req.row_doc]
                                       + req.row * self.doc_width[req.row_doc]]

    cdef void _prefetch_lists(self, _Request req, bint contents) noexcept:
        """Start loading the list constants of the lead entity's row: their records, or (once
        those are in) their items and role bitsets."""
        cdef int k, width
        cdef Cell* cell
        cdef Constant* record
        cdef char* words
        cdef Py_ssize_t offset
        if req.row_text == NULL or req.row < 0 or req.refused is not None:
            return
        width = self.doc_width[req.row_doc]
        cell = &self.cells[self.doc_base[req.row_doc] + req.row * width]
        for k in range(width):
            if cell[k].error < 0 and cell[k].value.tag == T_LIST and cell[k].value.obj == NULL:
                record = &self.consts[cell[k].value.i]
                if not contents:
                    LG_PREFETCH(record)
                else:
                    LG_PREFETCH(&self.list_items[record.items])
                    if record.roles >= 0 and record.nfew < 0:
                        words = <char*>&self.bitset_words[record.roles * self.words]
                        for offset in range(0, self.words * sizeof(uint64_t), 64):
                            LG_PREFETCH(words + offset)

    # ---- reading the request ---------------------------------------------------------------

    cdef int _load(self, _Request req, object request, object defaults,
                   bint fast_only=False, bint copy=False) except -1:
        """Fill the request's cells in one pass; the Python path handles anything unusual.

        1 when read; 0 when `fast_only` and the request needs the Python path, which runs
        code of the request's own objects (so check_batch runs it with nothing read ahead)."""
        if copy or not self._load_fast(req, request, defaults):
            if fast_only:
                return 0
            normalized = normalize_request(_private_copy(merge_defaults(request, defaults)))
            req.reset()
            req.keep = normalized
            req.private = True
            for k in (0, 1, 2, 3, 5):
                root = normalized[ROOTS[k]]
                req.roots[k] = <PyObject*>root
                self._fill(req, <PyObject*>root, 1 + k)
            req.action = self._shape_id(req, 3)
            req.resource_type = self._shape_id(req, 4)
        req.roots[4] = <PyObject*>req.caller
        return 1

    cdef bint _load_fast(self, _Request req, object request, object defaults) except -1:
        """Plain dicts of the AuthZEN shape, read in one pass; False sends it the long way."""
        cdef PyObject* value
        cdef int k, cell
        if not PyDict_Check(<PyObject*>request):
            return False
        if defaults is not None and not PyDict_Check(<PyObject*>defaults):
            return False
        for k in range(6):
            req.roots[k] = NULL
        self._fill(req, <PyObject*>request, TOP)
        for k in range(6):
            if k == 4:
                continue  # the caller is not read from the request
            value = req.roots[k]
            if value == NULL and defaults is not None and k != 5:
                if _odd_keys(<PyObject*>defaults):
                    return False
                value = _get(defaults, ROOTS[k])
                if value == Py_None:
                    value = NULL
                if value != NULL:
                    if not PyDict_Check(value):
                        return False
                    req.roots[k] = value
                    self._fill(req, value, 1 + k)
            if value == NULL:
                if k < 3:
                    return False
                req.roots[k] = <PyObject*>_EMPTY
            elif not PyDict_Check(value):
                return False
        if req.foreign:  # read from a copy of its own, the long way
            return False
        for k in range(7):  # subject type, id; action name; resource type, id: strings
            cell = self.shape_cell[k]
            if k == 2 or k == 6:  # properties: absent, null or an object
                if req.slot_state[cell] == 1 and not PyDict_Check(req.slot_val[cell].obj):
                    return False
            elif req.slot_state[cell] != 1 or req.slot_val[cell].tag != T_STR:
                return False
        req.action = self._shape_id(req, 3)
        req.resource_type = self._shape_id(req, 4)
        return True

    cdef inline int64_t _shape_id(self, _Request req, int k) except? -3:
        """The intern id of a shape field (a string), kept in its cell for later reads."""
        return self._string_id(&req.slot_val[self.shape_cell[k]])

    cdef inline int64_t _string_id(self, Val* value) except? -3:
        """A string value's intern id (-1: not a policy string), looked up on first need."""
        if value.i == LAZY:
            value.i = self._sid(value.obj)
        return value.i

    cdef inline int64_t _sid(self, PyObject* text) except? -3:
        """A string's intern id, or -1: by text for an exact str, as a dict finds a subclass
        (whose own __hash__ or __eq__ may raise: that error is the caller's)."""
        cdef uint64_t text_hash, at
        cdef TextSlot* slot
        cdef PyObject* found
        if not PyUnicode_CheckExact(text):
            found = lg_dict_lookup(self.sids, <object>text)
            if found == NULL:
                return -3 if PyErr_Occurred() != NULL else -1
            return PyLong_AsLongLong(found)
        text_hash = lg_text_hash(text)
        at = text_hash & self.text_mask
        while True:
            slot = &self.text_slots[at]
            if slot.text == NULL:
                return -1
            if slot.hash == text_hash and (slot.text == text or _same_text(slot.text, text)):
                return slot.sid
            at = (at + 1) & self.text_mask

    cdef Val _classify(self, PyObject* o) noexcept:
        cdef Val v
        v.i = 0
        v.num = 0.0
        v.obj = o
        if PyUnicode_Check(<object>o):  # flag checks first; PyFloat_Check walks the MRO
            v.tag = T_STR
            v.i = LAZY
        elif PyDict_Check(o):
            v.tag = T_OBJ
        elif o == Py_True or o == Py_False:
            v.tag = T_BOOL
            v.i = 1 if o == Py_True else 0
        elif PyLong_Check(o):
            # Beyond +-(2^53 - 1) no double holds an integer exactly, so it has no kind and
            # any use fails closed (rounding is monotone: such an integer rounds past it).
            v.num = PyLong_AsDouble(o)
            if v.num == -1.0 and PyErr_Occurred() != NULL:  # too large for a double
                PyErr_Clear()
                v.tag = T_OTHER
            elif fabs(v.num) > MAX_EXACT:
                v.tag = T_OTHER
            else:
                v.tag = T_NUM
        elif PyList_Check(o):
            v.tag = T_LIST
            v.i = -1
        elif PyFloat_Check(o):
            v.tag = T_NUM
            v.num = PyFloat_AS_DOUBLE(o)
        elif _is_mapping(o):
            v.tag = T_OBJ
        else:
            v.tag = T_OTHER
        return v

    cdef inline Val _const(self, int c) noexcept:
        return self.consts[c].value

    cdef inline Py_ssize_t _len(self, Val v) noexcept:
        if v.obj == NULL:
            return self.consts[v.i].length
        return PyList_GET_SIZE(<object>v.obj)

    cdef inline Val _item(self, Val v, Py_ssize_t k) noexcept:
        cdef Val item
        if v.obj == NULL:
            return self._const(self.list_items[self.consts[v.i].items + k])
        item.obj = PyList_GET_ITEM(<object>v.obj, k)
        if not PyUnicode_CheckExact(item.obj):
            return self._classify(item.obj)
        item.tag = T_STR  # most request list items: classified here, no call
        item.i = LAZY
        item.num = 0.0
        return item

    # ---- layers and rules ------------------------------------------------------------------

    cdef object _decide(self, _Request req, bint explain):
        cdef int outcomes[64]
        cdef int chosen[64]
        cdef int layer, rule, outcome, deciding = -1
        cdef int* outcome_buf = outcomes
        cdef int* chosen_buf = chosen
        if self.nlayers > 64:
            outcome_buf = <int*>malloc(self.nlayers * sizeof(int))
            chosen_buf = <int*>malloc(self.nlayers * sizeof(int))
            if not outcome_buf or not chosen_buf:
                free(outcome_buf)
                free(chosen_buf)
                raise MemoryError()
        cdef int evaluated = 0
        self._route(req)
        try:
            for layer in range(self.nlayers):
                outcome = self._layer(req, layer, &rule)
                outcome_buf[layer] = outcome
                chosen_buf[layer] = rule
                evaluated += 1
                if outcome != OUTCOME_ALLOW:
                    if deciding < 0:
                        deciding = layer
                    if not explain:
                        break
            return self._decision(req, explain, evaluated, deciding, outcome_buf, chosen_buf)
        finally:
            if outcome_buf != outcomes:
                free(outcome_buf)
                free(chosen_buf)

    cdef object _decision(self, _Request req, bint explain, int evaluated, int deciding,
                          int* outcomes, int* chosen):
        cdef int slot
        if req.nerrors == 0 and not explain:
            if deciding >= 0:
                slot = deciding * (self.nrules + 1) + chosen[deciding] + 1
                cached = self.deny_decisions[slot]
                if cached is None:
                    cached = self._build(req, explain, evaluated, outcomes, chosen)
                    self.deny_decisions[slot] = cached
                return cached
            return self._allow(req, evaluated, outcomes, chosen)
        return self._keyed(req, explain, evaluated, outcomes, chosen)

    cdef object _keyed(self, _Request req, bint explain, int evaluated, int* outcomes,
                       int* chosen):
        """The shared Decision for these layer verdicts and errors (built on first use)."""
        cdef int k, n = 2
        cdef int32_t* key = req.key
        key[0] = explain
        key[1] = evaluated
        for k in range(evaluated):
            key[n] = outcomes[k]
            key[n + 1] = chosen[k]
            n += 2
        for k in range(3 * req.nerrors):
            key[n + k] = req.errors[k]
        n += 3 * req.nerrors
        packed = PyBytes_FromStringAndSize(<char*>key, n * sizeof(int32_t))
        decision = self.decision_cache.get(packed)
        if decision is None:
            decision = self._build(req, explain, evaluated, outcomes, chosen)
            if len(self.decision_cache) >= CACHE_LIMIT:
                self.decision_cache.clear()
            self.decision_cache[packed] = decision
        return decision

    cdef object _allow(self, _Request req, int evaluated, int* outcomes, int* chosen):
        """The shared Decision for this combination of allowing rules (built on first use)."""
        cdef uint64_t h = 14695981039346656037ULL, prime = 1099511628211ULL
        cdef int k, probe, width = self.nlayers + 1
        cdef int32_t* entry
        for k in range(self.nlayers):
            h = (h ^ <uint64_t>(chosen[k] + 1)) * prime
        for probe in range(ALLOW_SLOTS):
            entry = self.allow_slots + ((h + probe) & (ALLOW_SLOTS - 1)) * width
            if entry[0] < 0:
                decision = self._build(req, False, evaluated, outcomes, chosen)
                if len(self.allow_decisions) < ALLOW_SLOTS // 2:
                    for k in range(self.nlayers):
                        entry[k + 1] = chosen[k]
                    entry[0] = len(self.allow_decisions)
                    self.allow_decisions.append(decision)
                return decision
            for k in range(self.nlayers):
                if entry[k + 1] != chosen[k]:
                    break
            else:
                return self.allow_decisions[entry[0]]
        return self._build(req, False, evaluated, outcomes, chosen)

    cdef object _build(self, _Request req, bint explain, int evaluated, int* outcomes,
                       int* chosen):
        results = [
            LayerResult(self.layer_names[k], _op.OUTCOMES[outcomes[k]],
                        self.rule_ids[chosen[k]] if chosen[k] >= 0 else None)
            for k in range(evaluated)
        ]
        errors = []
        for k in range(0, 3 * req.nerrors, 3):
            name = _op.ERROR_CODES[req.errors[k + 1]]
            path = self.texts[req.errors[k + 2]]
            errors.append(EvalError(self.rule_ids[req.errors[k]], name, path,
                                    error_message(name, path)))
        return combine(results, errors, self.revision, explain)

    cdef int _layer(self, _Request req, int layer, int* chosen) except -2:
        cdef int bucket = req.buckets[layer]
        cdef int k, rule
        cdef bint deny
        chosen[0] = -1
        if bucket < 0:
            return OUTCOME_NO_MATCH
        for k in range(self.bucket_start[bucket], self.bucket_start[bucket + 1]):
            rule = self.bucket_rules[k]
            deny = self.rule_effect[rule] == EFFECT_DENY
            if self._matches(req, rule, deny):
                chosen[0] = rule
                return OUTCOME_DENY if deny else OUTCOME_ALLOW
        return OUTCOME_NO_MATCH

    cdef void _route(self, _Request req) noexcept:
        """Point the request at the buckets and role mask of its (action, resource type),
        computed on the first request with that pair and kept (for up to ROUTE_SLOTS / 2 pairs;
        past that, computed per request)."""
        cdef int64_t key = (req.action + 1) << 32 | (req.resource_type + 1)
        cdef int start = <int>(((<uint64_t>key * 0x9E3779B97F4A7C15ULL) >> 32)
                               & (ROUTE_SLOTS - 1))
        cdef int probe, slot = -1, layer
        cdef int64_t keys[4]  # the pair, then (action, *), (*, type), (*, *)
        for probe in range(ROUTE_SLOTS):
            slot = (start + probe) & (ROUTE_SLOTS - 1)
            if self.route_keys[slot] == key:
                req.buckets = self.route_buckets + slot * self.nlayers
                req.mask = self.route_masks + slot * self.words
                return
            if self.route_keys[slot] < 0:
                break
        if self.nroutes < ROUTE_SLOTS // 2 and slot >= 0 and self.route_keys[slot] < 0:
            req.buckets = self.route_buckets + slot * self.nlayers
            req.mask = self.route_masks + slot * self.words
        else:
            req.buckets = req.own_buckets
            req.mask = req.own_mask
        keys[0] = key
        keys[1] = (req.action + 1) << 32
        keys[2] = req.resource_type + 1
        keys[3] = 0
        for layer in range(self.nlayers):
            req.buckets[layer] = self._bucket(layer, keys)
        self._mask(req, keys)
        if req.buckets != req.own_buckets:
            self.route_keys[slot] = key  # published last: the entry is complete
            self.nroutes += 1

    cdef int _bucket(self, int layer, int64_t* keys) noexcept:
        """The layer's rules for the most specific of the four keys it indexes, or -1."""
        cdef int k, at
        for k in range(4):
            at = _find(self.index_keys, self.layer_key_start[layer],
                       self.layer_key_start[layer + 1], keys[k])
            if at >= 0:
                return self.index_bucket[at]
        return -1

    cdef bint _matches(self, _Request req, int rule, bint on_error) except -1:
        cdef int node = self.rule_cond[rule]
        cdef Val v
        if node < 0:
            return True
        if self.node_op[node] == TRUTH:  # (every rule's condition: its test, without a call)
            node = self.node_a[node]
        if self._bool(req, node, &v) == 0:  # (a condition that is not a boolean: an error)
            return v.i == 1
        req.errors[3 * req.nerrors] = rule
        req.errors[3 * req.nerrors + 1] = req.err_code
        req.errors[3 * req.nerrors + 2] = req.err_text
        req.nerrors += 1
        return on_error

    # ---- nodes -----------------------------------------------------------------------------
    # Each returns 0 with the value in `out`, or 1 with the failure in req.err_code/err_text.

    cdef inline int _fail(self, _Request req, int code, int32_t text):
        req.err_code = code
        req.err_text = text
        return 1

    cdef inline int _operand(self, _Request req, int n, Val* out) except -1:
        """`_eval`, with a read slot, a constant or a cell of the request's lead entity (most
        operands) taken without the call."""
        cdef int code = self.node_op[n]
        cdef int a = self.node_a[n], place
        cdef Cell* cell
        if code == SLOT and req.slot_state[a] == 1:
            out[0] = req.slot_val[a]
            return 0
        if code == CONST:
            out[0] = self.consts[a].value
            return 0
        if code == DATA_COL and req.lead_row != NULL:  # (else _data_col finds it)
            place = self.node_lead[n]
            if place >= 0:
                cell = req.lead_row + place
                if cell.error < 0:
                    out[0] = cell.value
                    return 0
        return self._eval(req, n, out)

    cdef inline int _bool(self, _Request req, int n, Val* out) except -1:
        if self._operand(req, n, out):
            return 1
        if out.tag != T_BOOL:
            return self._fail(req, E_TYPE, self.node_text[n])
        return 0

    cdef inline void _set_bool(self, Val* out, bint flag):
        out.tag = T_BOOL
        out.i = 1 if flag else 0
        out.obj = NULL

    cdef int _eval(self, _Request req, int n, Val* out) except -1:
        cdef int code = self.node_op[n]
        cdef int a = self.node_a[n], b = self.node_b[n]
        cdef Val left, right
        if code == CONST:
            out[0] = self._const(a)
            return 0
        if code == SLOT:
            return self._slot(req, a, out)
        if code == TRUTH:
            return self._bool(req, a, out)
        if code == AND:
            if self._bool(req, a, out):
                return 1
            if out.i == 0:
                return 0
            return self._bool(req, b, out)
        if code == OR:
            if self._bool(req, a, out):
                return 1
            if out.i == 1:
                return 0
            return self._bool(req, b, out)
        if code == NOT:
            if self._bool(req, a, out):
                return 1
            out.i = 1 - out.i
            return 0
        if EQ <= code <= GE:
            if self._operand(req, a, &left) or self._operand(req, b, &right):
                return 1
            return self._compare(req, code, &left, &right, self.node_text[n], out)
        if code == MEMBER:
            if self._operand(req, a, &left) or self._operand(req, b, &right):
                return 1
            return self._member(req, n, &left, &right, out)
        if code == DATA_COL:
            if self._operand(req, b, &left):
                return 1
            return self._data_col(req, a, &left, out)
        if code == WALK:
            if self._eval(req, a, out):
                return 1
            return self._walk(req, b, self.node_c[n], out)
        if code == FAIL:
            return self._fail(req, a, self.node_text[n])
        if code == NOW:
            if not req.now_ready:
                req.now = <int64_t>(self.clock() * 1_000_000)
                req.now_ready = True
            out.tag = T_TIME
            out.i = req.now
            out.obj = NULL
            return 0
        if code == PRESENT:
            self._set_bool(out, self._eval(req, a, &left) == 0)
            return 0
        return self._call(req, n, out)

    cdef inline int _compare(self, _Request req, int code, Val* x, Val* y, int32_t text,
                             Val* out) except -1:
        cdef bint result
        if code == EQ or code == NE:
            if x.tag != y.tag or not (x.tag == T_STR or x.tag == T_NUM or x.tag == T_BOOL
                                      or x.tag == T_TIME):
                return self._fail(req, E_TYPE, text)
            result = self._equal(x, y) == (code == EQ)
        else:
            if x.tag != y.tag or not (x.tag == T_NUM or x.tag == T_TIME):
                return self._fail(req, E_TYPE, text)
            if x.tag == T_NUM:
                if code == LT:
                    result = x.num < y.num
                elif code == LE:
                    result = x.num <= y.num
                elif code == GT:
                    result = x.num > y.num
                else:
                    result = x.num >= y.num
            else:
                if code == LT:
                    result = x.i < y.i
                elif code == LE:
                    result = x.i <= y.i
                elif code == GT:
                    result = x.i > y.i
                else:
                    result = x.i >= y.i
        self._set_bool(out, result)
        return 0

    cdef inline bint _equal(self, Val* x, Val* y) noexcept:
        if x.tag == T_NUM:
            return x.num == y.num
        if x.tag == T_STR:
            if x.i >= 0 and y.i >= 0:
                return x.i == y.i
            if x.obj == y.obj:
                return True
            if (x.i >= 0 and y.i == -1) or (x.i == -1 and y.i >= 0):
                return False  # one is a policy string, the other is known not to be
            return _same_text(x.obj, y.obj)
        return x.i == y.i

    cdef inline int _intern(self, _Request req, int node, Val* value) except -1:
        """Look up a request string's intern id once; a slot keeps it for later reads."""
        if value.tag == T_STR and value.i == LAZY:
            self._string_id(value)
            if self.node_op[node] == SLOT:
                req.slot_val[self.node_a[node]].i = value.i
        return 0

    cdef inline int _member(self, _Request req, int n, Val* item, Val* container,
                            Val* out) except -1:
        cdef Py_ssize_t k, size
        cdef Val element
        cdef bint found = False
        if container.tag != T_LIST:
            return self._fail(req, E_TYPE, self.node_text[self.node_b[n]])
        if not (item.tag == T_STR or item.tag == T_NUM or item.tag == T_BOOL):
            return self._fail(req, E_TYPE, self.node_text[self.node_a[n]])
        size = self._len(container[0])
        if container.obj == NULL and size > 2:  # a policy list: compare ids, not text
            self._intern(req, self.node_a[n], item)
        for k in range(size):
            element = self._item(container[0], k)
            if element.tag != item.tag:
                return self._fail(req, E_TYPE, self.node_text[n])
            if not found and self._equal(item, &element):
                found = True
        self._set_bool(out, found != (self.node_c[n] != 0))
        return 0

    cdef int _data_col(self, _Request req, int column, Val* key, Val* out) except -1:
        cdef int32_t text = self.column_key_text[column]
        cdef int doc = self.column_doc[column], row
        cdef Cell* cell
        if key.tag != T_STR:
            return self._fail(req, E_TYPE, text)
        if key.obj == req.row_text and doc == req.row_doc:  # rules read one entity many times
            row = req.row
            if not req.row_lists_loading:  # (its list records have come in by now)
                req.row_lists_loading = True
                self._prefetch_lists(req, True)
                self._keep_lead_row(req)
        else:
            row = self._entity_row(doc, key.obj)
            req.row_text, req.row_doc, req.row = key.obj, doc, row
            req.row_lists_loading = False
            if row >= 0:
                self._prefetch_lists(req, False)  # the rules that follow read them
        if row < 0:
            return self._fail(req, E_UNKNOWN_ENTITY, text)
        cell = &self.cells[self.doc_base[doc] + row * self.doc_width[doc] + self.column_pos[column]]
        if cell.error >= 0:
            return self._fail(req, cell.error, cell.text)
        out[0] = cell.value
        return 0

    cdef int _walk(self, _Request req, int first, int count, Val* value) except -1:
        cdef int step
        cdef Val key
        cdef PyObject* key_obj
        cdef PyObject* child
        for step in range(first, first + count):
            if self.step_kind[step] == STEP_STATIC:
                key_obj = PyTuple_GET_ITEM(self.strings, self.step_key[step])
            else:
                if self._eval(req, self.step_key[step], &key):
                    return 1
                if key.tag != T_STR:
                    return self._fail(req, E_TYPE, self.step_text[step])
                key_obj = key.obj
            if value.tag != T_OBJ:
                return self._fail(req, E_TYPE, self.step_text[step])
            if PyDict_Check(value.obj):
                if not req.private and _odd_keys(value.obj):
                    raise _NeedsCopy()  # the lookup may run a key's own __eq__
                child = _get(<object>value.obj, <object>key_obj)
            else:
                found = (<object>value.obj).get(<object>key_obj)
                req.keep = (req.keep, found)  # keep it alive for the borrowed reference
                child = <PyObject*>found
            if child == NULL or child == Py_None:
                return self._fail(req, self.step_missing[step], self.step_text[step])
            value[0] = self._classify(child)
        return 0

    cdef int _slot(self, _Request req, int slot, Val* out) except -1:
        cdef signed char state = req.slot_state[slot]
        cdef PyObject* value
        cdef int step, root
        if state == 1:
            out[0] = req.slot_val[slot]
            return 0
        if state == 2:
            return self._fail(req, req.slot_err[slot], req.slot_text[slot])
        root = self.slot_root[slot]
        value = req.roots[root]
        for step in range(self.slot_step_start[slot], self.slot_step_start[slot + 1]):
            key = self.slot_keys[step]
            if PyDict_Check(value):
                if not req.private and _odd_keys(value):
                    raise _NeedsCopy()  # the lookup may run a key's own __eq__
                value = _get(<object>value, key)
            elif isinstance(<object>value, Mapping):
                found = (<object>value).get(key)
                req.keep = (req.keep, found)
                value = <PyObject*>found
            else:
                return self._slot_fail(req, slot, E_TYPE, self.slot_step_text[step])
            if value == NULL or value == Py_None:
                if root < 3 and step == self.slot_step_start[slot] and key == "properties":
                    value = <PyObject*>_EMPTY  # absent properties read as an empty object
                else:
                    return self._slot_fail(req, slot, E_MISSING, self.slot_step_text[step])
        req.slot_val[slot] = self._classify(value)
        req.slot_state[slot] = 1
        out[0] = req.slot_val[slot]
        return 0

    cdef int _slot_fail(self, _Request req, int slot, int code, int32_t text):
        req.slot_state[slot] = 2
        req.slot_err[slot] = code
        req.slot_text[slot] = text
        return self._fail(req, code, text)

    # ---- built-in functions ----------------------------------------------------------------

    cdef int _call(self, _Request req, int n, Val* out) except -1:
        cdef int code = self.node_op[n]
        cdef int a = self.node_a[n], b = self.node_b[n]
        cdef Val first, second
        cdef int64_t micros
        if self._operand(req, a, &first):
            return 1
        if code == GRANTS:
            return self._grants(req, &first, self.node_text[a], out)
        if code == TIME:
            if first.tag != T_STR:
                return self._fail(req, E_TYPE, self.node_text[a])
            if not _parse_rfc3339(first.obj, &micros):
                return self._fail(req, E_INVALID, self.node_text[a])
            out.tag = T_TIME
            out.i = micros
            out.obj = NULL
            return 0
        if self._operand(req, b, &second):
            return 1
        if code == INTERSECTS or code == SUBSET:
            return self._sets(req, n, &first, &second, out)
        if first.tag != T_STR:
            return self._fail(req, E_TYPE, self.node_text[a])
        if code == STARTS_WITH or code == ENDS_WITH:
            if second.tag != T_STR:
                return self._fail(req, E_TYPE, self.node_text[b])
            self._set_bool(out, PyUnicode_Tailmatch(<object>first.obj, <object>second.obj, 0,
                                                    PyUnicode_GET_LENGTH(first.obj),
                                                    -1 if code == STARTS_WITH else 1) == 1)
            return 0
        if code == GLOB:
            return self._glob(req, &first, &second, self.node_text[b], out)
        return self._cidr(req, &first, &second, self.node_text[a], self.node_text[b], out)

    cdef int _strings(self, _Request req, Val* value, int32_t text) except -1:
        """Check a string or a list of strings (type_error otherwise)."""
        cdef Py_ssize_t k
        if value.tag == T_STR:
            return 0
        if value.tag != T_LIST:
            return self._fail(req, E_TYPE, text)
        for k in range(self._len(value[0])):
            if self._item(value[0], k).tag != T_STR:
                return self._fail(req, E_TYPE, text)
        return 0

    cdef int _glob(self, _Request req, Val* text, Val* patterns, int32_t patterns_text,
                   Val* out) except -1:
        cdef Py_ssize_t k
        cdef Val pattern
        if self._strings(req, patterns, patterns_text):
            return 1
        if patterns.tag == T_STR:
            self._set_bool(out, _glob_match(text.obj, patterns.obj))
            return 0
        for k in range(self._len(patterns[0])):
            pattern = self._item(patterns[0], k)
            if _glob_match(text.obj, pattern.obj):
                self._set_bool(out, True)
                return 0
        self._set_bool(out, False)
        return 0

    cdef int _cidr(self, _Request req, Val* address, Val* ranges, int32_t address_text,
                   int32_t range_text, Val* out) except -1:
        cdef int version
        cdef uint64_t hi, lo
        cdef Py_ssize_t k, size
        cdef Val item
        cdef Net network
        cdef bint found = False
        if not self._address(address.obj, &version, &hi, &lo):
            return self._fail(req, E_INVALID, address_text)
        if self._strings(req, ranges, range_text):
            return 1
        if ranges.tag == T_STR:
            size = 1
        else:
            size = self._len(ranges[0])
        for k in range(size):
            item = ranges[0] if ranges.tag == T_STR else self._item(ranges[0], k)
            if not self._network(&item, &network):
                return self._fail(req, E_INVALID, range_text)
            if not found and network.version == version:
                found = _in_network(hi, lo, &network)
        self._set_bool(out, found)
        return 0

    cdef bint _address(self, PyObject* text, int* version, uint64_t* hi, uint64_t* lo) except -1:
        cdef uint64_t v4
        if _parse_ipv4(text, &v4):
            version[0] = 4
            hi[0] = 0
            lo[0] = v4
            return True
        if not _has_colon(text):
            return False
        cached = self.address_cache.get(<object>text, False)
        if cached is False:
            try:
                ip = parse_address(<object>text)
                value = int(ip)
                cached = (ip.version, value >> 64, value & 0xFFFF_FFFF_FFFF_FFFF)
            except ValueError:
                cached = None
            if len(self.address_cache) >= CACHE_LIMIT:
                self.address_cache.clear()
            self.address_cache[<object>text] = cached
        if cached is None:
            return False
        version[0] = cached[0]
        hi[0] = cached[1]
        lo[0] = cached[2]
        return True

    cdef void _new_networks(self, int size) except *:
        """An empty table of `size` slots (a power of two) for parsed networks."""
        cdef int k
        self.net_buffer = bytearray(size * sizeof(NetSlot))
        self.nets = <NetSlot*><char*>self.net_buffer
        self.net_mask = size - 1
        self.nnets = 0
        for k in range(size):
            self.nets[k].sid = -1

    cdef inline int _net_slot(self, int64_t sid) noexcept:
        """Where `sid` is in the table of parsed networks, or the free slot it would take."""
        cdef int at = <int>(((<uint64_t>sid * 0x9E3779B97F4A7C15ULL) >> 32) & self.net_mask)
        while self.nets[at].sid >= 0 and self.nets[at].sid != sid:
            at = (at + 1) & self.net_mask
        return at

    cdef void _keep_network(self, int64_t sid, Net* network) except *:
        cdef NetSlot* old
        cdef int k, size = self.net_mask + 1
        if 2 * (self.nnets + 1) > size:
            old_buffer = self.net_buffer  # alive until the entries are moved
            old = self.nets
            if size < net_slots_max:
                self._new_networks(2 * size)
                for k in range(size):
                    if old[k].sid >= 0:
                        self.nets[self._net_slot(old[k].sid)] = old[k]
                        self.nnets += 1
            else:
                self._new_networks(size)  # as large as allowed: start over
        k = self._net_slot(sid)
        self.nets[k].sid = sid
        self.nets[k].net = network[0]
        self.nnets += 1

    cdef bint _network(self, Val* text, Net* out) except -1:
        """Parse a network once: policy and data strings by id, request strings by text."""
        cdef int at
        if text.i >= 0:
            at = self._net_slot(text.i)
            if self.nets[at].sid == text.i:
                out[0] = self.nets[at].net
            else:
                _set_network(out, _parse_network(text.obj))
                self._keep_network(text.i, out)
            return out.version > 0
        cached = self.network_cache.get(<object>text.obj, False)
        if cached is False:
            cached = _parse_network(text.obj)
            if len(self.network_cache) >= CACHE_LIMIT:
                self.network_cache.clear()
            self.network_cache[<object>text.obj] = cached
        _set_network(out, cached)
        return out.version > 0

    cdef int _sets(self, _Request req, int n, Val* left, Val* right, Val* out) except -1:
        cdef Py_ssize_t i, j, nl, nr
        cdef Val x, y
        cdef int tag = 0
        cdef bint any_found = False, all_found = True, hit
        if left.tag != T_LIST:
            return self._fail(req, E_TYPE, self.node_text[self.node_a[n]])
        if right.tag != T_LIST:
            return self._fail(req, E_TYPE, self.node_text[self.node_b[n]])
        nl = self._len(left[0])
        nr = self._len(right[0])
        for i in range(nl + nr):
            x = self._item(left[0], i) if i < nl else self._item(right[0], i - nl)
            if i == 0:
                tag = x.tag
                if not (tag == T_STR or tag == T_NUM or tag == T_BOOL):
                    return self._fail(req, E_TYPE, self.node_text[n])
            elif x.tag != tag:
                return self._fail(req, E_TYPE, self.node_text[n])
        for i in range(nl):
            x = self._item(left[0], i)
            hit = False
            for j in range(nr):
                y = self._item(right[0], j)
                if self._equal(&x, &y):
                    hit = True
                    break
            any_found = any_found or hit
            all_found = all_found and hit
        self._set_bool(out, any_found if self.node_op[n] == INTERSECTS else all_found)
        return 0

    cdef int _grants(self, _Request req, Val* roles, int32_t text, Val* out) except -1:
        cdef Py_ssize_t k
        cdef Constant* record
        cdef int w, role, bits
        cdef Val item
        cdef bint found = False
        if roles.tag != T_LIST:
            return self._fail(req, E_TYPE, text)
        if roles.obj == NULL and self.consts[roles.i].nfew >= 0:
            record = &self.consts[roles.i]
            for k in range(record.nfew):
                role = record.few[k]
                if (req.mask[role >> 6] >> (role & 63)) & 1:
                    found = True
                    break
            self._set_bool(out, found)
            return 0
        if roles.obj == NULL and self.consts[roles.i].roles >= 0:
            bits = self.consts[roles.i].roles
            for w in range(self.words):
                if self.bitset_words[bits * self.words + w] & req.mask[w]:
                    found = True
                    break
            self._set_bool(out, found)
            return 0
        for k in range(self._len(roles[0])):
            if self._item(roles[0], k).tag != T_STR:
                return self._fail(req, E_TYPE, text)
        for k in range(self._len(roles[0])):
            item = self._item(roles[0], k)
            if self._string_id(&item) < 0:
                continue
            role = self.role_of_sid[item.i]
            if role >= 0 and (req.mask[role >> 6] >> (role & 63)) & 1:
                found = True
                break
        self._set_bool(out, found)
        return 0

    cdef void _mask(self, _Request req, int64_t* keys) noexcept:
        """The bitset of roles granting the action on the resource type (all four keys)."""
        cdef int k, w, at, bits
        memset(req.mask, 0, max(self.words, 1) * sizeof(uint64_t))
        for k in range(4):
            at = _find(self.grant_keys, 0, self.ngrants, keys[k])
            if at >= 0:
                bits = self.grant_bitset[at]
                for w in range(self.words):
                    req.mask[w] |= self.bitset_words[bits * self.words + w]


# ---- helpers on str objects (no allocation) ---------------------------------------------------

cdef object _MAPPING = Mapping


def _bits(words, int bitset, int width, int limit):
    """The roles (bit indices) of one bitset of the tables' `bitset_words`, stopping once
    there are more than `limit`."""
    members = []
    for w in range(width):
        word = words[bitset * width + w] & 0xFFFF_FFFF_FFFF_FFFF
        while word and len(members) <= limit:
            low = word & -word
            members.append(64 * w + low.bit_length() - 1)
            word ^= low
    return members


class _NeedsCopy(Exception):
    """A rule is about to look into a request dict whose keys may run code of their own: the
    request is decided again, read from a private copy."""


cdef bint _odd_keys(PyObject* d) noexcept:
    """Whether a lookup in this dict by an exact str may run code of one of its keys."""
    cdef int known = lg_dict_odd_keys(d)
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* value
    if known >= 0:
        return known == 1
    while PyDict_Next(d, &pos, &key, &value):
        if not PyUnicode_CheckExact(key):
            return True
    return False


cdef bint _plain(PyObject* o, bint items) noexcept:
    """Whether `o` is read and compared without running code of its own: a str, number,
    bool, None, dict or list (with `items`, a list's items must be too), not a str subclass
    (found in the intern table by its own __hash__ and __eq__) nor any other object."""
    cdef Py_ssize_t k
    if PyUnicode_CheckExact(o) or PyLong_Check(o) or o == Py_None or PyDict_Check(o):
        return True
    if PyList_Check(o):
        if items:
            for k in range(PyList_GET_SIZE(<object>o)):
                if not _plain(PyList_GET_ITEM(<object>o, k), False):
                    return False
        return True
    return PyFloat_Check(o)  # (last: it walks the type's MRO)


cdef object _private_copy(object value):
    """The request with every dict, mapping and list in it copied: what the evaluator reads
    then belongs to it alone, whatever code the request's own objects run meanwhile (a str
    subclass's __hash__, say, that changes the dict it sits in). Shared containers stay
    shared and a cycle stays a cycle; no depth of nesting recurses (a loop over a stack)."""
    cdef dict copies = {}  # id of an original -> (the original, kept alive; its copy)
    cdef list pending = []
    root = _copy_shell(value, copies, pending)
    while pending:
        original, copy = pending.pop()
        if type(copy) is list:
            (<list>copy).extend([_copy_shell(item, copies, pending) for item in original])
        else:
            for key, item in list(original.items()):  # all taken before any key is hashed
                (<dict>copy)[key] = _copy_shell(item, copies, pending)
    return root


cdef object _copy_shell(object value, dict copies, list pending):
    """An empty container to fill with the copies of `value`'s items (queued), the one made
    for it before, or `value` itself when it holds no items to copy."""
    if not (isinstance(value, (dict, list)) or _is_mapping(<PyObject*>value)):
        return value
    known = copies.get(id(value))
    if known is not None:
        return (<tuple>known)[1]
    copy = [] if isinstance(value, list) else {}
    copies[id(value)] = (value, copy)
    pending.append((value, copy))
    return copy


cdef bint _is_mapping(PyObject* o) noexcept:
    """isinstance(o, Mapping), treating a failing check as "no"."""
    cdef int found = PyObject_IsInstance(o, <PyObject*>_MAPPING)
    if found < 0:
        PyErr_Clear()
        return False
    return found == 1


cdef inline int _find(int64_t* sorted_keys, int lo, int hi, int64_t key) noexcept:
    """Binary search of sorted_keys[lo:hi] for key: its index, or -1."""
    cdef int end = hi, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < end and sorted_keys[lo] == key else -1


cdef inline Py_ssize_t _entity_slot(uint64_t text_hash, int doc, Py_ssize_t mask) noexcept:
    return <Py_ssize_t>((<uint64_t>text_hash ^ (<uint64_t>doc * 0x9E3779B97F4A7C15ULL)) & <uint64_t>mask)


cdef inline bint _same_text(PyObject* x, PyObject* y) noexcept:
    """Equal str contents (CPython stores equal strings in the same kind)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(x)
    cdef int kind = PyUnicode_KIND(x)
    return (n == PyUnicode_GET_LENGTH(y) and kind == PyUnicode_KIND(y)
            and lg_same_bytes(PyUnicode_DATA(x), PyUnicode_DATA(y), n * kind))


cdef bint _has_colon(PyObject* text):
    cdef Py_ssize_t k
    for k in range(PyUnicode_GET_LENGTH(text)):
        if PyUnicode_READ_CHAR(text, k) == 58:  # ':'
            return True
    return False


cdef bint _parse_ipv4(PyObject* text, uint64_t* out):
    """Dotted-quad IPv4 exactly as Python's ipaddress reads it (no leading zeros)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), k = 0
    cdef unsigned int digit, value
    cdef int part
    cdef uint64_t result = 0
    cdef const unsigned char* chars = <const unsigned char*>PyUnicode_DATA(text)
    if PyUnicode_KIND(text) != 1 or n < 7 or n > 15:
        return False  # (a character past U+00FF is no digit or dot)
    for part in range(4):
        if part:
            if k >= n or chars[k] != 46:  # '.'
                return False
            k += 1
        if k >= n:
            return False
        value = chars[k] - 48  # (unsigned: a character below '0' wraps past 9)
        if value > 9:
            return False
        k += 1
        if k < n:
            digit = chars[k] - 48
            if digit <= 9:
                if value == 0:
                    return False  # a leading zero
                value = value * 10 + digit
                k += 1
                if k < n:
                    digit = chars[k] - 48
                    if digit <= 9:
                        value = value * 10 + digit
                        k += 1
                        if value > 255:
                            return False
        result = (result << 8) | value
    if k != n:
        return False
    out[0] = result
    return True


cdef object _parse_network(PyObject* text):
    """(version, high 64 bits, low 64 bits, prefix length) of a network, None if it is not one."""
    try:
        network = parse_network(<object>text)
    except ValueError:
        return None
    value = int(network.network_address)
    return network.version, value >> 64, value & 0xFFFF_FFFF_FFFF_FFFF, network.prefixlen


cdef void _set_network(Net* out, object parsed) except *:
    if parsed is None:
        out.version = -1
        return
    out.version, out.hi, out.lo, out.prefix = parsed


cdef bint _in_network(uint64_t hi, uint64_t lo, Net* network) noexcept:
    cdef uint64_t net_hi = network.hi, net_lo = network.lo
    cdef int prefix = network.prefix
    cdef uint64_t mask_hi, mask_lo
    if network.version == 4:
        mask_lo = 0 if prefix == 0 else ((<uint64_t>0xFFFFFFFF) << (32 - prefix)) & <uint64_t>0xFFFFFFFF
        return (lo & mask_lo) == net_lo
    if prefix >= 64:
        mask_hi = 0xFFFFFFFFFFFFFFFF
        mask_lo = 0 if prefix == 64 else (<uint64_t>0xFFFFFFFFFFFFFFFF) << (128 - prefix)
    else:
        mask_hi = 0 if prefix == 0 else (<uint64_t>0xFFFFFFFFFFFFFFFF) << (64 - prefix)
        mask_lo = 0
    return (hi & mask_hi) == net_hi and (lo & mask_lo) == net_lo


cdef bint _glob_match(PyObject* text, PyObject* pattern):
    """`*` any run, `?` one character; greedy two-pointer matching, no backtracking blow-up."""
    cdef Py_ssize_t nt = PyUnicode_GET_LENGTH(text), np = PyUnicode_GET_LENGTH(pattern)
    cdef Py_ssize_t t = 0, p = 0, star_p = -1, star_t = 0
    cdef unsigned int pc
    while t < nt:
        if p < np:
            pc = PyUnicode_READ_CHAR(pattern, p)
            if pc == 42:  # '*'
                star_p = p
                star_t = t
                p += 1
                continue
            if pc == 63 or pc == PyUnicode_READ_CHAR(text, t):  # '?'
                t += 1
                p += 1
                continue
        if star_p >= 0:
            star_t += 1
            t = star_t
            p = star_p + 1
        else:
            return False
    while p < np and PyUnicode_READ_CHAR(pattern, p) == 42:
        p += 1
    return p == np


cdef int _digits(PyObject* text, Py_ssize_t at, int count, int* out):
    cdef int value = 0, k
    cdef unsigned int ch
    for k in range(count):
        ch = PyUnicode_READ_CHAR(text, at + k)
        if not (48 <= ch <= 57):
            return 0
        value = value * 10 + (ch - 48)
    out[0] = value
    return 1


cdef int64_t _days_from_civil(int64_t y, int m, int d):
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y -= m <= 2
    cdef int64_t era = (y if y >= 0 else y - 399) // 400
    cdef int64_t yoe = y - era * 400
    cdef int64_t doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef bint _parse_rfc3339(PyObject* text, int64_t* out):
    """`YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM)` exactly as `literals.parse_timestamp`."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), k = 19, frac_digits = 0
    cdef int year, month, day, hour, minute, second, off_h = 0, off_m = 0, sign = 0
    cdef int64_t fraction = 0
    cdef unsigned int ch
    cdef int month_days[13]
    if n < 20:
        return False
    if not (_digits(text, 0, 4, &year) and PyUnicode_READ_CHAR(text, 4) == 45
            and _digits(text, 5, 2, &month) and PyUnicode_READ_CHAR(text, 7) == 45
            and _digits(text, 8, 2, &day)):
        return False
    ch = PyUnicode_READ_CHAR(text, 10)
    if not (ch == 84 or ch == 116 or ch == 32):
        return False
    if not (_digits(text, 11, 2, &hour) and PyUnicode_READ_CHAR(text, 13) == 58
            and _digits(text, 14, 2, &minute) and PyUnicode_READ_CHAR(text, 16) == 58
            and _digits(text, 17, 2, &second)):
        return False
    if PyUnicode_READ_CHAR(text, k) == 46:
        k += 1
        while k < n and 48 <= PyUnicode_READ_CHAR(text, k) <= 57:
            if frac_digits < 6:
                fraction = fraction * 10 + (PyUnicode_READ_CHAR(text, k) - 48)
            frac_digits += 1
            k += 1
        if frac_digits == 0 or frac_digits > 9:
            return False
        while frac_digits < 6:
            fraction *= 10
            frac_digits += 1
    if k >= n:
        return False
    ch = PyUnicode_READ_CHAR(text, k)
    if ch == 90 or ch == 122:
        if k + 1 != n:
            return False
    elif ch == 43 or ch == 45:
        sign = 1 if ch == 43 else -1
        if not (k + 6 == n and _digits(text, k + 1, 2, &off_h)
                and PyUnicode_READ_CHAR(text, k + 3) == 58 and _digits(text, k + 4, 2, &off_m)):
            return False
    else:
        return False
    month_days[:] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        month_days[2] = 29
    if (year < 1 or month < 1 or month > 12 or day < 1 or day > month_days[month]
            or hour > 23 or minute > 59 or second > 59 or off_h > 23 or off_m > 59):
        return False
    out[0] = ((_days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
               - sign * (off_h * 3600 + off_m * 60)) * 1_000_000 + fraction)
    return True
