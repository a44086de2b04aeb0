"""Type stub of the compiled parser loop (dsl/_lalr.pyx)."""

import re
from enum import IntEnum
from typing import Any

class Reduction(IntEnum):
    PASS = 0
    FLAT = 1
    BUILD = 2
    BUILD_OR_PASS = 3

class NotFast(Exception): ...

class Loop:
    def __init__(self, actions: list[dict[str, int]], reductions: list[tuple[Any, ...]],
                 keywords: dict[str, str], roots: frozenset[str], start: int, end: int,
                 scan: re.Pattern[str], span_type: type, token_type: type) -> None: ...
    def parse(self, text: str, source: str) -> Any: ...
