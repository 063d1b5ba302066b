"""Untrusted records at the client's boundaries: strict parsing, one verdict, no crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gem_graph import strictjson, verify
from gem_graph.checks.arguments import check_call, parse_arguments
from gem_graph.checks.execution import compare_call
from gem_graph.checks.problems import CODES
from gem_graph.cli.records import MAX_RECORD_BYTES, UnreadableLine, read_records
from gem_graph.environment import load_environment
from gem_graph.resources import data_dir
from gem_graph.sandbox import SandboxUnavailable

RETAIL = data_dir("environments") / "retail"
SCHEMAS = {"lookup": {"type": "object", "properties": {"order_id": {"type": "string"}}}}


def test_invalid_record_is_a_stable_code() -> None:
    assert "invalid_record" in CODES


# ---- read_records ------------------------------------------------------------------------


def test_read_records_parses_str_and_bytes_lines_and_skips_blank_ones() -> None:
    lines: list[str | bytes] = ['{"id": 1}', "", b"   ", b'{"id": "\xc3\xa9"}', b"[1]"]
    assert list(read_records(lines)) == [{"id": 1}, {"id": "é"}, [1]]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b'{"id": 1, "id": 2}', "duplicate object key 'id'"),
        (b'{"x": NaN}', "NaN"),
        (b'{"x": "\\ud800"}', "surrogate"),
        (b'{"x": "\xff"}', "UTF-8"),
        (b"[" * 100_000, "nesting"),
        (b"not json", "not valid JSON"),
    ],
)
def test_a_bad_line_becomes_an_unreadable_line_with_its_number(line: bytes, fragment: str) -> None:
    [first, bad] = list(read_records([b'{"ok": 1}', line]))
    assert first == {"ok": 1}
    assert isinstance(bad, UnreadableLine) and bad.line_number == 2
    assert fragment in bad.error


def test_a_line_over_the_size_cap_is_unreadable() -> None:
    [bad] = list(read_records([b'"' + b"x" * MAX_RECORD_BYTES + b'"']))
    assert isinstance(bad, UnreadableLine) and "limit" in bad.error


# ---- arguments and written outputs -------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ('{"order_id": "a", "order_id": "b"}', "duplicate object key 'order_id'"),
        ('{"order_id": NaN}', "NaN"),
        ('{"order_id": "\\udc00"}', "surrogate"),
        ('{"order_id": ' + "[" * 5000 + "]" * 5000 + "}", "nesting"),
        ('{"order_id": 1e999}', "finite"),
    ],
)
def test_ambiguous_arguments_are_malformed_with_the_reason(arguments: str, reason: str) -> None:
    assert parse_arguments(arguments) is None
    [only] = check_call("lookup", arguments, SCHEMAS, "messages[2].tool_calls[0]")
    assert only["code"] == "malformed_arguments"
    assert reason in only["message"]


def test_plain_arguments_still_parse() -> None:
    assert parse_arguments('{"order_id": "ord_1", "n": 18446744073709551616}') == {
        "order_id": "ord_1",
        "n": 2**64,
    }
    assert check_call("lookup", '{"order_id": "ord_1"}', SCHEMAS, "w") == []


@pytest.mark.parametrize(
    "written",
    [
        '{"status": "ok", "status": "ok"}',
        '{"status": "ok", "x": NaN}',
        '{"status": "ok\\ud800"}',
        "[" * 10_000 + "]" * 10_000,
    ],
)
@pytest.mark.parametrize(
    "real",
    [
        {"status": "ok", "result": {"status": "ok"}},
        {"status": "tool_error", "error": "nope"},
    ],
)
def test_ambiguous_written_outputs_match_nothing(written: str, real: dict[str, Any]) -> None:
    [only] = compare_call(written, real, "messages[3]")
    assert only["code"] == "output_mismatch"
    assert "not strict JSON" in only["message"]


def test_a_written_output_that_is_not_json_is_still_a_plain_string() -> None:
    assert compare_call("done", {"status": "ok", "result": "done"}, "w") == []


# ---- _verify_record: one verdict whatever the record ------------------------------------


class NoSandbox:
    """Stands in for the sandbox where the record never reaches it."""


async def verdict(record: Any) -> dict[str, Any]:
    env = load_environment(RETAIL)
    return await verify._verify_record(env, record, NoSandbox())  # type: ignore[arg-type]


def assert_printable(result: dict[str, Any]) -> None:
    assert set(result) == {"id", "ok", "problems", "final_state_sha256"}
    strictjson.dumps(result)  # plain JSON values, no lone surrogates anywhere


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        (UnreadableLine(7, "duplicate object key 'a'"), "line 7"),
        ([1, 2], "got list"),
        ("text", "got str"),
        (None, "got NoneType"),
        ({"id": "x"}, "no messages"),
    ],
)
async def test_unusable_records_are_invalid_records(record: Any, fragment: str) -> None:
    result = await verdict(record)
    assert_printable(result)
    assert result["ok"] is False
    assert [p["code"] for p in result["problems"]] == ["invalid_record"]
    assert fragment in result["problems"][0]["message"]


@pytest.mark.parametrize(
    "bad_id",
    [["a"], {"a": 1}, 1.5, True, "x\ud800", 10**5000],
    ids=["list", "dict", "float", "bool", "surrogate", "too-many-digits"],
)
async def test_an_unusable_id_is_reported_and_nulled(bad_id: Any) -> None:
    result = await verdict({"id": bad_id})
    assert_printable(result)
    assert result["id"] is None
    assert [p["where"] for p in result["problems"]] == ["id", "record"]
    assert {p["code"] for p in result["problems"]} == {"invalid_record"}


@pytest.mark.parametrize(
    "exc",
    [RecursionError("deep"), OverflowError("big"), UnicodeError("u"), TypeError(), KeyError(1)],
)
async def test_an_unexpected_exception_is_this_records_internal_error(
    exc: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(**_: Any) -> dict[str, Any]:
        raise exc

    monkeypatch.setattr(verify, "verify_trajectory", explode)
    result = await verdict({"id": "r1", "messages": []})
    assert_printable(result)
    assert result["id"] == "r1" and result["ok"] is False
    [only] = result["problems"]
    assert only["code"] == "internal_error" and type(exc).__name__ in only["message"]


async def test_sandbox_unavailable_still_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    async def unavailable(**_: Any) -> dict[str, Any]:
        raise SandboxUnavailable("no seccomp")

    monkeypatch.setattr(verify, "verify_trajectory", unavailable)
    with pytest.raises(SandboxUnavailable):
        await verdict({"messages": []})


async def test_problem_texts_with_lone_surrogates_are_escaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def quoting(**_: Any) -> dict[str, Any]:
        message = "call to 'x': arguments must be one strict JSON object: \ud800"
        problems = [{"code": "malformed_arguments", "message": message, "where": "m\udc00"}]
        verification = {"final_state_sha256": None, "state_diff": {}}
        return {"problems": problems, "verification": verification}

    monkeypatch.setattr(verify, "verify_trajectory", quoting)
    result = await verdict({"messages": []})
    assert_printable(result)
    assert result["problems"][0]["message"].endswith("\\ud800")
    assert json.loads(json.dumps(result, ensure_ascii=True)) == result
