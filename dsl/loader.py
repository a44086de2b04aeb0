"""Stage 0: files and directories -> sources -> a validated `Policy`; data files -> documents."""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from . import ast
from .errors import Diagnostic, PolicyError, SourceLines
from .literals import is_exact_number, is_unicode
from .parser import parse_module
from .validate import build_policy

POLICY_SUFFIX = ".lg"


def parse_policy(text: str, name: str = "<policy>",
                 data: Mapping[str, Any] | None = None) -> ast.Policy:
    """Parse and validate one policy given as text."""
    return compile_sources([ast.Source(name, text)], data)


def load_policy(paths: str | Path | Iterable[str | Path],
                data: Mapping[str, Any] | None = None) -> ast.Policy:
    """Read policy files (a directory means every `*.lg` file in it, sorted) and validate them."""
    return compile_sources(read_sources(paths), data)


def read_sources(paths: str | Path | Iterable[str | Path]) -> list[ast.Source]:
    """The policy texts behind `paths`, in a stable order; raises `PolicyError` if unreadable."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    problems: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob(f"*{POLICY_SUFFIX}") if p.is_file())
            if not found:
                problems.append(_file_problem("file_not_found", f"no `*{POLICY_SUFFIX}` policy "
                                              "files in this directory", path))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(_file_problem("file_not_found", "no such file or directory", path))
    sources = []
    for path in files:
        try:
            sources.append(ast.Source(str(path), path.read_text("utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(_file_problem("file_unreadable", f"cannot read: {exc}", path))
    if problems:
        raise PolicyError(problems)
    return sources


def compile_sources(sources: list[ast.Source],
                    data: Mapping[str, Any] | None = None) -> ast.Policy:
    """Parse every source (reporting each file's syntax error), then validate them together."""
    lines = SourceLines()
    modules: list[ast.Module] = []
    problems: list[Diagnostic] = []
    for source in sources:
        lines.add(source.name, source.text)
        try:
            modules.append(parse_module(source.text, source.name))
        except PolicyError as exc:
            problems.extend(exc.diagnostics)
    if problems:  # meaning is not checked across files while one of them does not parse
        raise PolicyError(problems)
    return build_policy(modules, lines, tuple(sources), data)


def load_data(path: str | Path) -> dict[str, Any]:
    """Read a data file (JSON, or YAML for `.yaml`/`.yml`): an object of named documents."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise PolicyError([_file_problem("file_not_found", "no such data file", path)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([_file_problem("file_unreadable", f"cannot read: {exc}", path)]) from None
    return parse_data(text, str(path))


def parse_data(text: str, name: str = "<data>") -> dict[str, Any]:
    """Decode data text; raise `PolicyError(invalid_data)` with the position of a syntax error."""
    try:
        is_yaml = name.endswith((".yaml", ".yml"))
        value = yaml.safe_load(text) if is_yaml else json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError([_data_problem(f"not valid JSON: {exc.msg}", name, exc.lineno,
                                         exc.colno, text)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise PolicyError([_data_problem(f"not valid YAML: {exc}".splitlines()[0], name, line,
                                         column, text)]) from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise PolicyError([_data_problem(f"a number is too long: {exc}", name, 1, 1,
                                         text)]) from None
    if value is None:
        value = {}
    problem = data_problem(value)
    if problem:
        raise PolicyError([_data_problem(problem, name, 1, 1, text)])
    if not isinstance(value, dict):  # (data_problem has checked that keys are strings)
        raise PolicyError([_data_problem("data must be an object mapping document names to "
                                         "documents", name, 1, 1, text)])
    return value


def data_problem(value: Any) -> str | None:
    """Why the data cannot be compared exactly or written as JSON (tables and revisions are
    JSON), naming where, or None: only objects with string keys, arrays, strings of valid
    Unicode, finite numbers, integers within +-(2^53 - 1) (numbers compare as doubles, which
    hold no larger integer exactly), booleans and null."""
    pending: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while pending:
        item, where = pending.pop()
        problem = _value_problem(item)
        if problem:
            return f"`{_data_path(where)}` {problem}"
        if isinstance(item, dict):
            pending.extend((member, (where, key)) for key, member in item.items())
        elif isinstance(item, list):
            pending.extend((member, (where, index)) for index, member in enumerate(item))
    return None


def _value_problem(item: Any) -> str | None:
    if isinstance(item, dict):
        if not all(isinstance(key, str) for key in item):
            return "has a key that is not a string (in YAML, quote a key such as `1:` or `on:`)"
        if not all(is_unicode(key) for key in item):
            return "has a key with half a surrogate pair (a lone `\\ud800`)"
    elif isinstance(item, str):
        if not is_unicode(item):
            return "is a string with half a surrogate pair (a lone `\\ud800`)"
    elif isinstance(item, bool) or item is None or isinstance(item, list):
        return None
    elif isinstance(item, int):
        if not is_exact_number(item):
            return ("is an integer beyond +-(2^53 - 1): numbers compare as doubles, which do "
                    "not hold it exactly (write a large identifier as a string)")
    elif isinstance(item, float):
        if not math.isfinite(item):
            return "is NaN or an infinite number"
    elif isinstance(item, (datetime.date, datetime.time)):
        return ("is a YAML date or time, not a string: quote it "
                "(timestamps are RFC 3339 strings)")
    else:
        return f"is a {type(item).__name__}, which is not a JSON value"
    return None


def _data_path(where: tuple[Any, ...]) -> str:
    """`data.accounts["sa-1"].roles[0]` for the chain ((((), "accounts"), "sa-1"), "roles"), 0)."""
    steps: list[str] = []
    while where:
        where, step = where
        if isinstance(step, int):
            steps.append(f"[{step}]")
        elif step.isidentifier() and step.isascii():
            steps.append(f".{step}")
        else:
            steps.append(f"[{json.dumps(step, ensure_ascii=False)}]")
    return "data" + "".join(reversed(steps))


def _file_problem(code: str, message: str, path: Path) -> Diagnostic:
    return Diagnostic(code, message, ast.Span(str(path), 0, 0))


def _data_problem(message: str, name: str, line: int, column: int, text: str) -> Diagnostic:
    lines = SourceLines()
    lines.add(name, text)
    return lines.diagnostic("invalid_data", message, ast.Span(name, line, column))
