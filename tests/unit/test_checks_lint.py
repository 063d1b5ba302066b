"""Static lint of LLM-written tool modules."""

from __future__ import annotations

import textwrap

import pytest

from gem_graph.checks.lint import DEFAULT_ALLOWED, lint_tool_code

VALID = '''\
"""Retail tools."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from gem_graph.runtime import ToolError, new_id, now, rng

CANCELLABLE = frozenset({"pending", "paid"})
PRICE_STEP = Decimal("0.01")
__all__ = ["get_order", "cancel_order"]


class NotFound(ToolError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found.")


@dataclass
class _Order:
    order_id: str
    status: str


def _load(db, order_id: str) -> _Order:
    sql = "SELECT order_id, status FROM orders WHERE order_id = ?"
    row = db.execute(sql, (order_id,)).fetchone()
    if row is None:
        raise NotFound(f"Order {order_id}")
    return _Order(*row)


def get_order(db, order_id: str) -> dict:
    order = _load(db, order_id)
    return {"order_id": order.order_id, "status": order.status}


def cancel_order(db, order_id: str, reason: str = "changed_mind") -> dict:
    order = _load(db, order_id)
    if order.status not in CANCELLABLE:
        raise ToolError(f"Order {order_id} has already shipped.")
    time = now()
    deadline = time + timedelta(days=1)
    refund_id = new_id("ref")
    db.execute("UPDATE orders SET status = 'cancelled', note = ? WHERE order_id = ?",
               (f"attach receipt; {reason}", order_id))
    lucky = rng().random() < 0.1
    return {"order_id": order_id, "status": "cancelled", "refund_id": refund_id,
            "deadline": deadline.isoformat(), "hour": time.hour, "lucky": lucky,
            "meta": json.dumps({"reason": reason})}
'''


def lint(source):
    return lint_tool_code(textwrap.dedent(source))


def lint_body(body):
    """Lint `body` placed inside a tool function."""
    return lint("def tool(db, x):\n" + textwrap.indent(textwrap.dedent(body), "    "))


def codes(problems):
    return sorted({p["code"] for p in problems})


def test_valid_module_passes():
    assert lint_tool_code(VALID) == []


@pytest.mark.parametrize("source", [None, 3, b"def f(): pass", ["x"]])
def test_non_text_is_a_problem(source):
    assert codes(lint_tool_code(source)) == ["lint"]


def test_syntax_error_reports_the_line():
    problems = lint("import json\n\ndef broken(db:\n    return 1\n")
    assert codes(problems) == ["lint"]
    assert problems[0]["where"] == "tools.py:3"
    assert "syntax error" in problems[0]["message"]


def test_null_bytes_do_not_raise():
    assert codes(lint_tool_code("x = 1\0")) == ["lint"]


@pytest.mark.parametrize(
    "statement",
    [
        "import os",
        "import os.path",
        "from os import path",
        "import subprocess",
        "import socket",
        "import sqlite3",
        "import random",
        "import time",
        "import uuid",
        "import requests",
        "from pathlib import Path",
    ],
)
def test_imports_outside_the_allow_list(statement):
    problems = lint(statement + "\n")
    assert codes(problems) == ["lint"]
    assert problems[0]["where"] == "tools.py:1"
    assert "not allowed" in problems[0]["message"]


@pytest.mark.parametrize("module", sorted(DEFAULT_ALLOWED))
def test_allowed_imports(module):
    assert lint(f"import {module}\n") == []


def test_custom_allow_list():
    assert lint_tool_code("import hashlib\n", DEFAULT_ALLOWED | {"hashlib"}) == []
    assert codes(lint_tool_code("import json\n", frozenset({"re"}))) == ["lint"]


def test_sqlite3_message_points_at_the_connection():
    problems = lint("import sqlite3\n")
    assert "db.IntegrityError" in problems[0]["message"]


@pytest.mark.parametrize(
    "statement",
    [
        "from gem_graph.runtime import clock",
        "import gem_graph.runtime",
        "from gem_graph.sandbox import worker",
        "from . import helpers",
        "from json import *",
    ],
)
def test_runtime_and_relative_imports(statement):
    assert codes(lint(statement + "\n")) == ["lint"]


def test_imports_inside_functions_are_checked():
    assert codes(lint_body("import os\nreturn os.getcwd()")) == ["lint"]


@pytest.mark.parametrize(
    "body",
    [
        "return ().__class__.__bases__",
        "return x.__dict__",
        "return __builtins__",
        "return __name__",
    ],
)
def test_dunder_access(body):
    problems = lint_body(body)
    assert codes(problems) == ["lint"]
    assert "dunder" in problems[0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        "return open('/etc/passwd').read()",
        "return eval(x)",
        "exec(x)",
        "return compile(x, 'f', 'exec')",
        "return getattr(db, x)",
        "setattr(db, 'x', 1)",
        "return globals()",
        "return vars(x)",
        "return input()",
        "breakpoint()",
        "exit(1)",
        "f = eval\nreturn f(x)",
    ],
)
def test_forbidden_builtins(body):
    assert codes(lint_body(body)) == ["lint"]


@pytest.mark.parametrize("body", ["return hash(x)", "return id(x)"])
def test_nondeterministic_builtins(body):
    problems = lint_body(body)
    assert codes(problems) == ["lint"]
    assert "id" in problems[0]["message"] or "hash" in problems[0]["message"]


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\ndef t(db):\n    return datetime.now().isoformat()\n",
        "import datetime\ndef t(db):\n    return str(datetime.datetime.utcnow())\n",
        "import datetime as dt\ndef t(db):\n    return str(dt.date.today())\n",
    ],
)
def test_real_clock_reads(source):
    problems = lint(source)
    assert codes(problems) == ["lint"]
    assert "now()" in problems[0]["message"]


def test_forbidden_module_use_without_import_is_reported():
    assert codes(lint_body("return sys.modules")) == ["lint"]


def test_local_variable_named_like_a_module_is_fine():
    assert lint_body("time = x\nsignal = x\nreturn time.hour, signal.strip()") == []


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "attach '/tmp/x.db' as x",
        "PRAGMA writable_schema = ON",
        "VACUUM INTO '/tmp/copy.db'",
        "DETACH x",
        "SELECT load_extension('evil')",
    ],
)
def test_forbidden_sql(sql):
    problems = lint_body(f"return db.execute({sql!r}).fetchall()")
    assert codes(problems) == ["lint"]
    assert problems[0]["where"] == "tools.py:2"


def test_forbidden_sql_in_executescript_and_concatenation():
    assert codes(lint_body('db.executescript("SELECT 1; " + "PRAGMA foreign_keys=OFF")')) == [
        "lint"
    ]


def test_sql_words_in_other_strings_are_fine():
    body = 'db.execute("UPDATE t SET note = ?", ("Please attach the receipt",))\nreturn "pragma"'
    assert lint_body(body) == []


@pytest.mark.parametrize(
    "body",
    [
        "db.enable_load_extension(True)",
        "db.load_extension('x')",
        "db.backup(x)",
        "return db.serialize()",
        "db.set_authorizer(None)",
        "db.close()",
        "db.row_factory = None",
        "db.isolation_level = None",
    ],
)
def test_connection_reconfiguration(body):
    assert codes(lint_body(body)) == ["lint"]


@pytest.mark.parametrize(
    "source",
    [
        "print('loading')\n",
        "for i in range(3):\n    pass\n",
        "if True:\n    X = 1\n",
        "try:\n    import json\nexcept ImportError:\n    pass\n",
        "while True:\n    pass\n",
        "with x:\n    pass\n",
    ],
)
def test_module_level_code(source):
    problems = lint(source)
    assert "lint" in codes(problems)
    assert problems[0]["where"] == "tools.py:1"
    assert "module-level" in problems[0]["message"]


def test_module_level_constants_are_fine():
    source = (
        '"""Doc."""\nimport re\nLIMIT = 3\nNAMES: tuple[str, ...] = ("a", "b")\n'
        'PATTERN = re.compile(r"^ORD-\\d+$")\n'
    )
    assert lint(source) == []


def test_async_tools_are_reported():
    problems = lint("async def get_order(db, order_id):\n    return {}\n")
    assert codes(problems) == ["lint"]
    assert "async" in problems[0]["message"]


def test_problems_are_sorted_by_line():
    problems = lint("import os\nx = 1\nprint(x)\nimport sys\n")
    lines = [int(p["where"].split(":")[1]) for p in problems]
    assert lines == sorted(lines)
    assert len(problems) == 3
