"""Fuzzing `verify_records` with hostile records: one well-formed verdict each, never a crash.

Every example is one `verify_records` call (one sandbox), so records are batched and the
examples are few; set `GEM_FUZZ_EXAMPLES` for a longer hunt. The records are built in
memory (they reach the checks without the strict parser, as a library caller's would) and
also serialised to lines and read back through `read_records`, as `gem-graph verify` does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gem_graph import strictjson
from gem_graph.checks.problems import CODES
from gem_graph.cli.records import read_records
from gem_graph.resources import data_dir
from gem_graph.sandbox import probe
from gem_graph.settings import SandboxSettings, Settings
from gem_graph.verify import verify_records

RETAIL = data_dir("environments") / "retail"
TIER = "standard"
BATCH_SECONDS = 120.0
"""Generous bound on one batch; the point is that it ends, not how fast."""

_tiers = probe()["tiers"]
pytestmark = pytest.mark.skipif(_tiers[TIER] is not True, reason=f"{TIER}: {_tiers[TIER]}")

GOLD = [
    json.loads(line)
    for line in (RETAIL / "trajectories.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]
TOOL_NAMES = [tool["function"]["name"] for tool in GOLD[0]["tools"]]
SETTINGS = Settings(sandbox=SandboxSettings(tier=TIER, call_timeout_s=2.0, prestart=1))
FUZZ = settings(
    max_examples=int(os.environ.get("GEM_FUZZ_EXAMPLES", "2")),  # raise it for a longer hunt
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- strategies --------------------------------------------------------------------------


def nest(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


lone_surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
strings = st.one_of(
    st.text(max_size=20),
    lone_surrogates,
    st.text(max_size=5).map(lambda s: s + "\ud800"),
    st.sampled_from(["ord_5001", "cus_1001", "", "\x00", "‮", "a" * 300]),
)
huge_ints = st.one_of(
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 2**70, 10**40, -(10**300)]),
)
scalars = st.one_of(st.none(), st.booleans(), huge_ints, st.floats(allow_nan=True), strings)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=20,
) | st.integers(min_value=60, max_value=400).map(nest)

argument_strings = st.one_of(
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.sampled_from(
        [
            '{"order_id": "ord_5001", "order_id": "ord_5002"}',
            '{"customer_id": NaN}',
            '{"customer_id": Infinity}',
            '{"customer_id": 1e999}',
            '{"customer_id": "\\ud800"}',
            '{"email": "a@b.c", "zip_code": ' + "9" * 5000 + "}",
            "[" * 100_000,
            '{"customer_id": ' + "[" * 3000 + "]" * 3000 + "}",
            "",
            "null",
            "{}",
        ]
    ),
    strings,
    json_values,  # not even a string
)


@st.composite
def tool_calls(draw: st.DrawFn) -> Any:
    call = {
        "id": draw(st.one_of(strings, huge_ints, st.none())),
        "type": draw(st.sampled_from(["function", "function", "tool", 3])),
        "function": {
            "name": draw(st.one_of(st.sampled_from(TOOL_NAMES), strings)),
            "arguments": draw(argument_strings),
        },
    }
    return draw(st.one_of(st.just(call), json_values))


@st.composite
def messages(draw: st.DrawFn) -> Any:
    message: dict[str, Any] = {
        "role": draw(st.sampled_from(["system", "user", "assistant", "tool", "developer", 7])),
        "content": draw(st.one_of(strings, json_values, argument_strings)),
    }
    if draw(st.booleans()):
        message["tool_calls"] = draw(st.lists(tool_calls(), max_size=3) | json_values)
    if draw(st.booleans()):
        message["tool_call_id"] = draw(st.one_of(strings, huge_ints))
    return draw(st.one_of(st.just(message), json_values))


@st.composite
def random_records(draw: st.DrawFn) -> Any:
    record: dict[str, Any] = {"messages": draw(st.lists(messages(), max_size=6) | json_values)}
    if draw(st.booleans()):
        record["id"] = draw(st.one_of(strings, huge_ints, json_values))
    if draw(st.booleans()):
        record["scenario"] = draw(
            st.one_of(
                json_values,
                st.fixed_dictionaries({"now": st.one_of(st.none(), strings), "rows": json_values}),
            )
        )
    if draw(st.booleans()):
        record["tools"] = draw(json_values)
    return record


@st.composite
def mutated_gold(draw: st.DrawFn) -> Any:
    """A real record with a few fields replaced by hostile values."""
    record = copy.deepcopy(draw(st.sampled_from(GOLD)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(record["messages"]) - 1))
        message = record["messages"][index]
        target = draw(
            st.sampled_from(["content", "arguments", "name", "role", "id", "scenario", "drop"])
        )
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if target == "arguments" and calls:
            calls[0]["function"]["arguments"] = draw(argument_strings)
        elif target == "name" and calls:
            calls[0]["function"]["name"] = draw(strings)
        elif target == "id":
            record["id"] = draw(st.one_of(strings, huge_ints, json_values))
        elif target == "scenario":
            table = draw(st.sampled_from(["orders", "customers", "nope"]))
            record["scenario"] = {
                "now": draw(st.one_of(st.none(), strings)),
                "rows": {table: [{"order_id": draw(huge_ints), "x": draw(json_values)}]},
            }
        elif target == "drop":
            del record["messages"][index]
        else:
            message[target if target in ("content", "role") else "content"] = draw(json_values)
    return record


records = st.one_of(random_records(), random_records(), mutated_gold(), json_values)


# ---- properties --------------------------------------------------------------------------


async def verdicts(items: list[Any]) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [result async for result in verify_records(RETAIL, items, SETTINGS)]

    return await asyncio.wait_for(collect(), BATCH_SECONDS)


def check_verdicts(items: list[Any], results: list[dict[str, Any]]) -> None:
    assert len(results) == len(items)
    for result in results:
        assert set(result) == {"id", "ok", "problems", "final_state_sha256"}
        assert isinstance(result["ok"], bool) and isinstance(result["problems"], list)
        assert result["ok"] is (not result["problems"])
        assert {p["code"] for p in result["problems"]} <= CODES
        assert result["final_state_sha256"] is None or isinstance(result["final_state_sha256"], str)
        assert result["id"] is None or type(result["id"]) in (str, int)
        strictjson.dumps(result)  # plain JSON, no lone surrogates: it always prints


def as_line(item: Any) -> bytes:
    """The record as a JSONL line, the way a careless producer might have written it."""
    try:
        return json.dumps(item, allow_nan=True).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return b"[" * 1000


@FUZZ
@given(st.lists(records, min_size=6, max_size=12))
def test_every_record_gets_exactly_one_well_formed_verdict(items: list[Any]) -> None:
    items = [copy.deepcopy(GOLD[0]), *items]
    started = time.monotonic()
    results = asyncio.run(verdicts(items))
    check_verdicts(items, results)
    assert results[0]["ok"] is True, results[0]  # the sandbox really ran
    assert time.monotonic() - started < BATCH_SECONDS


@FUZZ
@given(
    st.lists(
        st.one_of(records.map(as_line), st.binary(max_size=64), st.sampled_from([b"\xff", b"{"])),
        min_size=6,
        max_size=12,
    )
)
def test_every_line_read_back_gets_one_verdict(lines: list[bytes]) -> None:
    lines = [line for line in lines if line.strip() and b"\n" not in line]
    parsed = list(read_records(lines))
    assert len(parsed) == len(lines)
    results = asyncio.run(verdicts(parsed))
    check_verdicts(parsed, results)


def test_gold_records_survive_the_fuzz_settings() -> None:
    results = asyncio.run(verdicts(copy.deepcopy(GOLD)))
    assert [r["ok"] for r in results] == [True] * len(GOLD)
