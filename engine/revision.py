"""The policy revision: a content hash of the policy text and its data."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from layergate.dsl.ast import Source


def policy_revision(sources: Iterable[Source], data: Mapping[str, Any] | None) -> str:
    """`sha256:` + 24 hex digits over every source text (in load order) and the canonical data.

    File names are left out on purpose: moving a policy directory does not change what it says.
    """
    digest = hashlib.sha256()
    for source in sources:
        text = source.text.encode("utf-8")
        digest.update(len(text).to_bytes(8, "big"))
        digest.update(text)
    digest.update(orjson.dumps(data or {}, option=orjson.OPT_SORT_KEYS))
    return "sha256:" + digest.hexdigest()[:24]
