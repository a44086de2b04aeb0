"""Type stub of the Cython evaluator (engine/_eval.pyx)."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .decision import Decision
from .tables import Tables

class CompiledMismatch(RuntimeError): ...

def _limit_parsed_networks(slots: int) -> int: ...
def _read_dict_entries(enabled: bool) -> tuple[bool, bool]: ...
def _huge_table_pages(enabled: bool) -> bool: ...

class Evaluator:
    tables: Tables
    revision: str
    clock: Callable[[], float]
    def __init__(self, tables: Tables, clock: Callable[[], float] = ...) -> None: ...
    def check(self, request: Mapping[str, Any], caller: Mapping[str, Any] | None = None,
              explain: bool = False) -> Decision: ...
    def check_batch(self, requests: Iterable[Any], defaults: Mapping[str, Any] | None = None,
                    semantic: str = "execute_all", caller: Mapping[str, Any] | None = None,
                    explain: bool = False) -> list[Decision]: ...
