"""Static lint of LLM-written tool modules (`tools.py`): clear feedback, not a boundary.

Public API:
- `lint_tool_code(source, allowed_imports=DEFAULT_ALLOWED) -> list[ProblemDict]`: code `lint`,
  `where` is `tools.py:<line>`.
- `DEFAULT_ALLOWED`: the standard-library modules tool code may import.
- `RUNTIME_MODULE`, `RUNTIME_NAMES`: `from gem_graph.runtime import ToolError, now, new_id, rng`.

The sandbox is the security boundary; this lint exists so the implement stage can tell the
model, before anything runs, what the runtime will refuse or what breaks determinism:
- imports only from `allowed_imports` and the runtime names (plus `from __future__ import`);
- no dunder names or attributes (`__class__`, `__globals__`, ...); defining dunder methods
  and calling `super().__init__(...)` are allowed;
- no dangerous builtins (open, exec, eval, compile, __import__, getattr, setattr, delattr,
  globals, locals, vars, input, breakpoint, exit, quit, help, memoryview), nor `hash()` or
  `id()`, whose values change between runs;
- no use of os, sys, subprocess, socket, ctypes, importlib, pathlib, shutil, threading,
  multiprocessing, signal, pickle, sqlite3, random, time or uuid;
- no clock reads (`datetime.now()`, `date.today()`, ...): time comes from `now()`;
- no `ATTACH`, `DETACH`, `VACUUM`, `PRAGMA` or `load_extension` in SQL string literals
  passed to `execute`-like calls, no connection-level calls (`enable_load_extension`,
  `backup`, `serialize`, `set_authorizer`, `close`, ...) and no assignment to `db.<attr>`;
- module level holds only a docstring, imports, constant assignments and function or class
  definitions; tool functions are plain `def`, not `async def`.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from gem_graph.checks.problems import ProblemDict, problem

DEFAULT_ALLOWED: frozenset[str] = frozenset(
    {
        "json", "re", "math", "datetime", "decimal", "statistics", "itertools", "functools",
        "collections", "dataclasses", "typing", "string", "enum",
    }
)  # fmt: skip
RUNTIME_MODULE = "gem_graph.runtime"
RUNTIME_NAMES: frozenset[str] = frozenset({"ToolError", "now", "new_id", "rng"})

_FORBIDDEN_CALLS = {
    "open": "no file access",
    "exec": "no dynamic code",
    "eval": "no dynamic code",
    "compile": "no dynamic code",
    "__import__": "imports must be plain import statements",
    "getattr": "use attribute access directly",
    "setattr": "use attribute access directly",
    "delattr": "use attribute access directly",
    "globals": "no introspection",
    "locals": "no introspection",
    "vars": "no introspection",
    "input": "tools cannot read input",
    "breakpoint": "no debugging hooks",
    "exit": "never exit the process; raise ToolError for a domain failure",
    "quit": "never exit the process; raise ToolError for a domain failure",
    "help": "no introspection",
    "memoryview": "not needed by tools",
}
_NONDETERMINISTIC_CALLS = {
    "hash": "hash() of strings changes between runs; outputs must be deterministic",
    "id": "id() changes between runs; use new_id(prefix) for new record ids",
}
_FORBIDDEN_MODULES = {
    "os": "no environment, file or process access",
    "sys": "no interpreter access",
    "subprocess": "no processes",
    "socket": "no network",
    "ctypes": "no native code",
    "importlib": "no dynamic imports",
    "pathlib": "no file access",
    "shutil": "no file access",
    "threading": "no threads",
    "multiprocessing": "no processes",
    "signal": "no signals",
    "pickle": "no pickle",
    "sqlite3": "use the `db` connection you are given; its exceptions are attributes such as "
    "db.IntegrityError",
    "random": "use rng() from gem_graph.runtime",
    "time": "use now() from gem_graph.runtime",
    "uuid": "use new_id(prefix) from gem_graph.runtime",
}
_CLOCK_METHODS = frozenset({"now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp"})
_CLOCK_OWNERS = frozenset({"datetime", "date"})
_CONNECTION_METHODS = frozenset(
    {
        "enable_load_extension", "load_extension", "backup", "serialize", "deserialize",
        "set_authorizer", "set_progress_handler", "set_trace_callback", "interrupt",
        "create_function", "create_aggregate", "create_collation", "create_window_function",
        "setlimit", "setconfig", "blobopen", "iterdump",
    }
)  # fmt: skip
_SQL_METHODS = frozenset({"execute", "executemany", "executescript"})
_FORBIDDEN_SQL = re.compile(
    r"\b(?:attach\s+(?:database\b|['\"]|:)|detach\b|vacuum\b|pragma\b|load_extension\s*\()",
    re.IGNORECASE,
)
_DUNDER = re.compile(r"^__\w+__$")


def _lint(message: str, node: ast.AST | None) -> ProblemDict:
    line = getattr(node, "lineno", None)
    return problem("lint", message, f"tools.py:{line}" if line else "tools.py")


def _string_literals(node: ast.AST) -> list[str]:
    return [
        child.value
        for child in ast.walk(node)
        if isinstance(child, ast.Constant) and isinstance(child.value, str)
    ]


def _is_constant_expression(node: ast.expr) -> bool:
    """Literals, containers, names, attribute lookups, operators and calls of those."""
    return not any(
        isinstance(child, ast.Lambda | ast.NamedExpr | ast.Await | ast.Yield | ast.YieldFrom)
        for child in ast.walk(node)
    )


class _Linter(ast.NodeVisitor):
    def __init__(self, allowed_imports: frozenset[str], bound: set[str]) -> None:
        self.allowed = allowed_imports
        self.bound = bound
        """Names the module itself binds (variables, parameters), never module references."""
        self.problems: list[ProblemDict] = []

    def report(self, message: str, node: ast.AST | None) -> None:
        self.problems.append(_lint(message, node))

    # ---- module structure --------------------------------------------------------------

    def check_module(self, module: ast.Module) -> None:
        for index, statement in enumerate(module.body):
            if isinstance(statement, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef):
                continue
            if isinstance(statement, ast.AsyncFunctionDef):
                continue  # reported by visit_AsyncFunctionDef
            if (
                index == 0
                and isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                continue  # module docstring
            if isinstance(statement, ast.Assign | ast.AnnAssign) and (
                statement.value is None or _is_constant_expression(statement.value)
            ):
                continue
            self.report(
                f"module-level {type(statement).__name__} statement: the module may "
                "hold only imports, constants, and function or class definitions; "
                "move this code into a function",
                statement,
            )

    # ---- imports -----------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_module_name(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self.report("relative imports are not allowed", node)
        elif module == "__future__":
            return
        elif module == RUNTIME_MODULE:
            for alias in node.names:
                if alias.name not in RUNTIME_NAMES:
                    self.report(
                        f"'{alias.name}' is not provided by {RUNTIME_MODULE}; only "
                        f"{', '.join(sorted(RUNTIME_NAMES))} may be imported",
                        node,
                    )
        else:
            self.check_module_name(module, node)
        for alias in node.names:
            if alias.name == "*":
                self.report("star imports are not allowed; import names explicitly", node)

    def check_module_name(self, name: str, node: ast.AST) -> None:
        top = name.split(".")[0]
        if name == RUNTIME_MODULE or top == "gem_graph":
            self.report(
                f"import from the runtime as `from {RUNTIME_MODULE} import "
                f"{', '.join(sorted(RUNTIME_NAMES))}`",
                node,
            )
        elif top not in self.allowed:
            reason = _FORBIDDEN_MODULES.get(top, "not on the allow-list")
            self.report(
                f"import of '{name}' is not allowed ({reason}); allowed modules: "
                f"{', '.join(sorted(self.allowed))}",
                node,
            )

    # ---- names, attributes, calls --------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__all__" and isinstance(node.ctx, ast.Store):
            return
        if _DUNDER.match(node.id):
            self.report(f"dunder name '{node.id}' is not allowed", node)
        elif node.id in _FORBIDDEN_CALLS and isinstance(node.ctx, ast.Load):
            self.report(f"'{node.id}' is not allowed ({_FORBIDDEN_CALLS[node.id]})", node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _DUNDER.match(node.attr) and not _is_super_init(node):
            self.report(f"dunder attribute '.{node.attr}' is not allowed", node)
        if (
            isinstance(node.value, ast.Name)
            and node.value.id in _FORBIDDEN_MODULES
            and node.value.id not in self.bound
        ):
            module = node.value.id
            self.report(
                f"use of '{module}.{node.attr}' is not allowed ({_FORBIDDEN_MODULES[module]})", node
            )
        if (
            isinstance(node.ctx, ast.Store | ast.Del)
            and isinstance(node.value, ast.Name)
            and node.value.id == "db"
        ):
            self.report(
                f"do not reconfigure the connection (db.{node.attr}); rows come back "
                "as tuples, build dicts explicitly",
                node,
            )
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in _NONDETERMINISTIC_CALLS:
            self.report(f"'{func.id}()' is not allowed: {_NONDETERMINISTIC_CALLS[func.id]}", node)
        if isinstance(func, ast.Attribute):
            if func.attr in _CLOCK_METHODS and _owner_name(func.value) in _CLOCK_OWNERS:
                self.report(
                    f"'{_owner_name(func.value)}.{func.attr}()' reads the real clock; "
                    "use now() from gem_graph.runtime (the scenario clock)",
                    node,
                )
            if func.attr in _CONNECTION_METHODS:
                self.report(
                    f"'.{func.attr}()' is not allowed: do not reconfigure, extend or "
                    "copy the database connection",
                    node,
                )
            if func.attr == "close" and _owner_name(func.value) == "db":
                self.report("do not close the database connection; the runtime owns it", node)
            if func.attr in _SQL_METHODS:
                for literal in _string_literals(node):
                    match = _FORBIDDEN_SQL.search(literal)
                    if match:
                        self.report(
                            f"SQL statement uses '{match.group(0).strip()}'; ATTACH, "
                            "DETACH, VACUUM, PRAGMA and load_extension are not "
                            "allowed in tool code",
                            node,
                        )
                        break
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.report(f"'async def {node.name}': tools are called synchronously; use plain def", node)
        self.generic_visit(node)


def _bound_names(module: ast.Module) -> set[str]:
    """Names assigned or taken as parameters anywhere in the module (not imports)."""
    names: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _owner_name(node: ast.expr) -> str | None:
    """`datetime` for `datetime`, `datetime.datetime` or `dt.datetime`; the name otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_super_init(node: ast.Attribute) -> bool:
    value = node.value
    return (
        node.attr == "__init__"
        and isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )


def lint_tool_code(
    source: Any, allowed_imports: frozenset[str] = DEFAULT_ALLOWED
) -> list[ProblemDict]:
    """Lint problems of a tool module's source (never raises)."""
    if not isinstance(source, str):
        return [_lint(f"tools_py must be Python source text, got {type(source).__name__}", None)]
    try:
        module = ast.parse(source)
    except SyntaxError as exc:
        where = f"tools.py:{exc.lineno}" if exc.lineno else "tools.py"
        return [problem("lint", f"syntax error: {exc.msg}", where)]
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        return [_lint(f"the source cannot be parsed: {type(exc).__name__}", None)]
    linter = _Linter(allowed_imports, _bound_names(module))
    linter.check_module(module)
    try:
        linter.visit(module)
    except RecursionError:
        linter.report("the code is nested too deeply to check", None)
    return sorted(linter.problems, key=lambda p: _line_of(p["where"]))


def _line_of(where: str) -> int:
    _, _, line = where.partition(":")
    return int(line) if line.isdigit() else 0
