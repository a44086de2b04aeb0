"""Layergate engine: compile policies to decision tables and decide requests.

Public API: `Authorizer` (the Cython evaluator by default), `Decision`, `RequestError`,
`Tables` (compiled policies, serializable), `compile_policy`, and the reference `Interpreter`.
"""

from .authorizer import Authorizer, ExtensionMissing
from .compiler import CompileReport, compile_policy
from .decision import Decision, EvalError, LayerResult
from .interpreter import Interpreter
from .request import RequestError
from .tables import Tables, TablesFormatError

__all__ = [
    "Authorizer",
    "CompileReport",
    "Decision",
    "EvalError",
    "ExtensionMissing",
    "Interpreter",
    "LayerResult",
    "RequestError",
    "Tables",
    "TablesFormatError",
    "compile_policy",
]
