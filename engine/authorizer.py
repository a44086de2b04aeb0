"""The embedding API: compile once, then decide requests with the Cython evaluator.

    authorizer = Authorizer.from_files("policy/", data="data.json")
    decision = authorizer.check(request, caller={"id": "spiffe://example.org/gw"})
    decisions = authorizer.check_batch(items, defaults={"subject": ...})
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from layergate.dsl import load_data, read_sources
from layergate.dsl.errors import ExtensionMissing
from layergate.dsl.loader import compile_sources

from .compiler import CompileReport, compile_policy
from .decision import Decision
from .pyeval import TableEvaluator
from .tables import Tables

BACKENDS = ("cython", "python")


def _cython_evaluator() -> type:
    try:
        from ._eval import Evaluator
    except ImportError as exc:
        raise ExtensionMissing(
            "the Cython evaluator layergate.engine._eval is not built "
            f"({exc}); reinstall with `pip install -e .` (a C compiler is needed), "
            "or pass backend=\"python\" to use the slow pure-Python twin on purpose"
        ) from exc
    return Evaluator


class Authorizer:
    """Decisions over compiled tables; `backend` is "cython" (default) or "python"."""

    def __init__(self, tables: Tables, backend: str = "cython",
                 clock: Callable[[], float] = time.time) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not `{backend}`")
        tables.check()  # tables built or changed in code, not only read, are held to it too
        self.tables = tables
        self.backend = backend
        self._rule_index: dict[str, int] | None = None
        # Whether any rule reads `elevation.*` (else JIT grants cannot matter).
        self.uses_elevation = any(tables.rule_uses_elevation)
        evaluator_type = _cython_evaluator() if backend == "cython" else TableEvaluator
        self._evaluator = evaluator_type(tables, clock)
        # The evaluator's own methods, so a call costs no extra Python frame.
        self.check = self._evaluator.check  # type: ignore[method-assign]
        self.check_batch = self._evaluator.check_batch  # type: ignore[method-assign]

    @classmethod
    def from_files(cls, policy: str | Path | Iterable[str | Path],
                   data: str | Path | Mapping[str, Any] | None = None,
                   backend: str = "cython", clock: Callable[[], float] = time.time,
                   report: CompileReport | None = None) -> Authorizer:
        """Read, validate and compile a policy (files or a directory) with its data."""
        documents = load_data(data) if isinstance(data, (str, Path)) else data
        validated = compile_sources(read_sources(policy), documents)
        return cls(compile_policy(validated, documents, report), backend, clock)

    @classmethod
    def from_compiled(cls, path: str | Path, backend: str = "cython",
                      clock: Callable[[], float] = time.time) -> Authorizer:
        """Load tables written by `layergate compile`."""
        return cls(Tables.from_bytes(Path(path).read_bytes()), backend, clock)

    def with_grant(self, decision: Decision, elevation: Mapping[str, Any]) -> Decision:
        """An allow that relied on a JIT grant names it in its reasons (`grant:<id>`)."""
        if not (decision.allowed and elevation.get("active")):
            return decision
        rules = self._rules
        if not any(self.tables.rule_uses_elevation[rules[r]] for r in decision.reasons):
            return decision
        return replace(decision, reasons=(*decision.reasons, f"grant:{elevation['id']}"))

    @property
    def _rules(self) -> dict[str, int]:
        if self._rule_index is None:
            self._rule_index = {rule: i for i, rule in enumerate(self.tables.rule_ids)}
        return self._rule_index

    @property
    def revision(self) -> str:
        return self.tables.revision

    def check(self, request: Mapping[str, Any], caller: Mapping[str, Any] | None = None,
              explain: bool = False) -> Decision:
        """Decide one AuthZEN-shaped request; raises `RequestError` if it is malformed."""
        return self._evaluator.check(request, caller, explain)

    def check_batch(self, requests: Iterable[Any], defaults: Mapping[str, Any] | None = None,
                    semantic: str = "execute_all", caller: Mapping[str, Any] | None = None,
                    explain: bool = False) -> list[Decision]:
        """Decide many requests in one pass; malformed items are denied with their field path."""
        return self._evaluator.check_batch(requests, defaults, semantic, caller, explain)
