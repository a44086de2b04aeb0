"""Layergate policy language: text -> AST -> validated `Policy`.

The public surface: `parse_policy` / `load_policy` (raise `PolicyError` with every coded
diagnostic), `load_data`, the AST types in `layergate.dsl.ast`, and `to_text` (the printer).
"""

from .ast import Policy
from .errors import CODES, Diagnostic, PolicyError
from .loader import load_data, load_policy, parse_data, parse_policy, read_sources
from .printer import to_text

__all__ = [
    "CODES",
    "Diagnostic",
    "Policy",
    "PolicyError",
    "load_data",
    "load_policy",
    "parse_data",
    "parse_policy",
    "read_sources",
    "to_text",
]
