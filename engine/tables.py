"""Stage 3 output: immutable decision tables, and their byte serialization.

Everything an evaluator needs is here as flat tuples of integers, floats and strings, so the
Cython hot path can load it into typed arrays and never call back into Python per request.
The layout is documented field by field; `engine.opcodes` numbers the codes used in it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

FORMAT_VERSION = 3  # 3: a SHA-256 digest of the payload follows the version
MAGIC = b"LGTABLES"
_DIGEST_BYTES = 32


class TablesFormatError(ValueError):
    """Bytes that are not decision tables of this format version."""


@dataclass(frozen=True)
class Tables:
    """Compiled decision tables for one policy revision.

    Strings are interned: every string the policy or its data can compare against has an id,
    its index in `strings`. Request strings not in the table get id -1 and equal nothing but
    the same unknown text.
    """

    revision: str
    strings: tuple[str, ...]
    texts: tuple[str, ...]  # printed source of nodes and path prefixes, for error paths

    # Layers, in evaluation order. Layer i's index is the sorted `index_keys` range
    # [layer_key_start[i], layer_key_start[i+1]); a key is (action id + 1) << 32 | (type id + 1)
    # with 0 for "any other"; `index_bucket` gives the bucket of applicable rules.
    layer_names: tuple[str, ...]
    layer_key_start: tuple[int, ...]
    index_keys: tuple[int, ...]
    index_bucket: tuple[int, ...]
    bucket_start: tuple[int, ...]  # bucket b is bucket_rules[bucket_start[b]:bucket_start[b+1]]
    bucket_rules: tuple[int, ...]  # deny rules first, then allow rules, each in written order

    # Rules: id text, layer, effect (opcodes.EFFECT_*), condition root node (-1: none).
    rule_ids: tuple[str, ...]
    rule_layer: tuple[int, ...]
    rule_effect: tuple[int, ...]
    rule_cond: tuple[int, ...]
    rule_uses_elevation: tuple[int, ...]  # 1 when the condition reads `elevation.*`

    # Condition program: node i is (op, a, b, c) with `node_text` its printed source.
    node_op: tuple[int, ...]
    node_a: tuple[int, ...]
    node_b: tuple[int, ...]
    node_c: tuple[int, ...]
    node_text: tuple[int, ...]

    # Request slots: static paths into the request. Slot s starts at root `slot_root[s]`
    # (opcodes.ROOTS) and follows keys slot_keys[slot_step_start[s]:slot_step_start[s+1]]
    # (string ids); slot_step_text gives the error path after each step.
    slot_root: tuple[int, ...]
    slot_step_start: tuple[int, ...]
    slot_keys: tuple[int, ...]
    slot_step_text: tuple[int, ...]

    # Walk steps (dynamic paths): kind (opcodes.STEP_*), key (string id or node), error path
    # text, and the error code when the key is absent.
    step_kind: tuple[int, ...]
    step_key: tuple[int, ...]
    step_text: tuple[int, ...]
    step_missing: tuple[int, ...]

    # Constants: tag (opcodes.T_*), an integer (string id, boolean, microseconds, list start in
    # `list_items`, or index into `objects`), a float (numbers), a length (lists) and the role
    # bitset of a list of role names (-1: none).
    const_tag: tuple[int, ...]
    const_int: tuple[int, ...]
    const_num: tuple[float, ...]
    const_len: tuple[int, ...]
    const_roles: tuple[int, ...]
    list_items: tuple[int, ...]  # constant ids
    objects: tuple[Any, ...]  # JSON objects that a walk can step into

    # Pre-joined data: column k reads document `column_doc[k]` by entity key; its cells are
    # rows column_cell_start[k] .. in entity order. A cell holds a constant, or an error code
    # with its path (cell_error -1: no error).
    doc_entity_start: tuple[int, ...]  # entities of document d: doc_entities[start[d]:start[d+1]]
    doc_entities: tuple[int, ...]  # string ids of entity keys
    column_doc: tuple[int, ...]
    column_key_text: tuple[int, ...]  # error path of `data.doc[key]`
    column_cell_start: tuple[int, ...]
    cell_const: tuple[int, ...]
    cell_error: tuple[int, ...]
    cell_text: tuple[int, ...]

    # Roles: role r is named strings[role_names[r]]; a grant key (as in the layer index) maps
    # to a bitset of the roles (transitively) granting it: words
    # bitset_words[grant_bitset[g] * role_words : (grant_bitset[g] + 1) * role_words].
    role_names: tuple[int, ...]
    role_words: int
    grant_keys: tuple[int, ...]
    grant_bitset: tuple[int, ...]
    bitset_words: tuple[int, ...]

    def to_bytes(self) -> bytes:
        """Serialize: magic, format version, the SHA-256 of the payload, then the payload (the
        fields as canonical JSON)."""
        payload = orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)
        return (MAGIC + FORMAT_VERSION.to_bytes(4, "big") + hashlib.sha256(payload).digest()
                + payload)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Tables:
        """The inverse of `to_bytes`; raises `TablesFormatError` on foreign or stale bytes."""
        if not blob.startswith(MAGIC):
            raise TablesFormatError("not a compiled Layergate policy (bad magic)")
        version = int.from_bytes(blob[len(MAGIC):len(MAGIC) + 4], "big")
        if version != FORMAT_VERSION:
            raise TablesFormatError(f"compiled with table format {version}; this Layergate "
                                    f"reads format {FORMAT_VERSION}: recompile the policy")
        start = len(MAGIC) + 4 + _DIGEST_BYTES
        digest, payload = blob[len(MAGIC) + 4:start], blob[start:]
        if hashlib.sha256(payload).digest() != digest:
            raise TablesFormatError("corrupt compiled policy: its checksum does not match (the "
                                    "file was changed or cut short after `layergate compile`)")
        try:
            raw = orjson.loads(payload)
            values = {f.name: _freeze(raw[f.name]) for f in fields(cls)}
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise TablesFormatError(f"corrupt compiled policy: {exc}") from None
        values["objects"] = tuple(raw["objects"])
        return cls(**values)

    @property
    def rule_count(self) -> int:
        return len(self.rule_ids)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
