"""Type stub of the compiled AST builder (dsl/_build.pyx)."""

from typing import Any

class TooDeep(Exception): ...

class BadLiteral(Exception):
    token: Any
    message: str
    def __init__(self, token: Any, message: str) -> None: ...

class Part:
    value: Any
    span: Any

class Build:
    source: str
    def __init__(self, token_types: tuple[type, ...], max_expr_height: int) -> None: ...
    def start_file(self, source: str) -> None: ...
    def reset(self) -> None: ...
    def __getattr__(self, rule: str) -> Any: ...  # one method per grammar rule
