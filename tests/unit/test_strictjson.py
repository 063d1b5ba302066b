"""`gem_graph.strictjson`: one unambiguous reading of untrusted JSON, or a clear error."""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gem_graph import strictjson
from gem_graph.strictjson import StrictJSONError, check_plain, dumps, loads


def rejects(text: str | bytes, kind: str, **limits: int) -> StrictJSONError:
    with pytest.raises(StrictJSONError) as info:
        loads(text, **limits)
    assert info.value.kind == kind, info.value
    return info.value


def test_plain_json_parses_like_json() -> None:
    text = '{"a": [1, 2.5, -0, true, false, null, "x\\u00e9\\ud83d\\ude00"], "b": {}}'
    assert loads(text) == {"a": [1, 2.5, 0, True, False, None, "xé😀"], "b": {}}
    assert loads(text.encode()) == loads(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"x": {"y": [{"k": 1, "k": 1}]}}',
        '[[[[{"ok": 1}, {"a": {"b": 1, "b": 2}}]]]]',
    ],
)
def test_duplicate_keys_at_any_depth_name_the_key(text: str) -> None:
    error = rejects(text, "duplicate_key")
    assert "duplicate" in str(error) and (
        "'a'" in str(error) or "'k'" in str(error) or "'b'" in str(error)
    )


def test_duplicate_key_message_names_exactly_that_key() -> None:
    assert "'order_id'" in str(
        rejects('{"order_id": "a", "x": 1, "order_id": "b"}', "duplicate_key")
    )


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"x": -Infinity}'])
def test_nan_and_infinity_are_rejected(text: str) -> None:
    rejects(text, "constant")


@pytest.mark.parametrize("text", ["1e400", "[-1e999]"])
def test_floats_that_overflow_to_infinity_are_rejected(text: str) -> None:
    rejects(text, "number")


def test_huge_integers_are_kept_exactly() -> None:
    assert loads(str(2**70)) == 2**70
    assert loads(f"[{-(2**200)}]") == [-(2**200)]
    assert dumps({"n": 2**70}) == '{"n":1180591620717411303424}'


def test_integer_literals_over_the_digit_limit_are_errors_not_crashes() -> None:
    rejects("9" * 5000, "number")


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting_is_an_error_quickly(opener: str) -> None:
    started = time.monotonic()
    rejects(opener * 10**5, "depth")
    assert time.monotonic() - started < 1.0


def test_depth_limit_is_exact() -> None:
    assert loads("[" * 64 + "]" * 64) is not None
    rejects("[" * 65 + "]" * 65, "depth")
    rejects('{"a":' * 65 + "1" + "}" * 65, "depth")
    assert loads("[[[]]]", max_depth=3) == [[[]]]
    rejects("[[[]]]", max_depth=2, kind="depth")


@pytest.mark.parametrize(
    "text",
    [
        '"\\ud800"',
        '"abc\\udfff"',
        '["ok", "\\ud83d"]',  # a high surrogate without its pair
        '"\\ude00\\ud83d"',  # a pair in the wrong order
        '{"\\udc00": 1}',  # in a key
        '{"a": {"b": ["\\uDBFF x"]}}',
    ],
)
def test_escaped_lone_surrogates_are_rejected(text: str) -> None:
    rejects(text, "surrogate")


@pytest.mark.parametrize("text", ['"\ud800"', '{"k\udc00": 1}', '["\ud83d\ude00"]'])
def test_raw_surrogates_in_str_input_are_rejected(text: str) -> None:
    # In a Python str even a raw high+low pair is two lone surrogates, not a scalar value.
    rejects(text, "surrogate")


@pytest.mark.parametrize(
    "data",
    [
        b'"\xff"',
        b'{"a": "\xc3"}',  # truncated sequence
        b'"\xed\xa0\x80"',  # an encoded surrogate (CESU-8 style)
        b'"\xc0\xaf"',  # overlong encoding
    ],
)
def test_invalid_utf8_bytes_are_rejected(data: bytes) -> None:
    rejects(data, "utf8")


def test_size_limit_counts_utf8_bytes() -> None:
    assert loads('"' + "é" * 10 + '"', max_bytes=22) == "é" * 10
    rejects('"' + "é" * 10 + '"', "size", max_bytes=21)
    rejects(b" " * 11, "size", max_bytes=10)


def test_syntax_errors_are_strict_errors_of_kind_syntax() -> None:
    for text in ["", "{", "[1,]", "{'a': 1}", "\ufeff{}", "1 2"]:
        rejects(text, "syntax")


def test_strict_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        loads("[NaN]")


def test_dumps_accepts_plain_values_compactly() -> None:
    value = {"b": [1, 2.5, None, True, False, "é"], "a": {}}
    assert dumps(value) == '{"b":[1,2.5,null,true,false,"é"],"a":{}}'
    assert dumps(value, sort_keys=True, ensure_ascii=True).startswith('{"a":{}')
    assert loads(dumps(value)) == value


class Dict(dict):  # type: ignore[type-arg]
    pass


class List(list):  # type: ignore[type-arg]
    pass


class Str(str):
    def __str__(self) -> str:
        raise AssertionError("foreign code ran")


class Int(int):
    pass


class Float(float):
    pass


@pytest.mark.parametrize(
    "value",
    [
        Dict(),
        List(),
        Str("x"),
        Int(1),
        Float(1.0),
        OrderedDict(),
        [Dict()],
        {"k": Str("v")},
        {Str("k"): 1},
        (1, 2),
        {1, 2},
        b"bytes",
        object(),
        {1: "int key"},
        {None: 1},
        float("nan"),
        [float("inf")],
        "lone \ud800",
        {"k\udfff": 1},
    ],
)
def test_dumps_rejects_anything_but_plain_json(value: Any) -> None:
    with pytest.raises(StrictJSONError):
        dumps(value)


def test_dumps_bounds_depth_and_cycles() -> None:
    deep: list[Any] = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(StrictJSONError, match="deeper"):
        dumps(deep)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(StrictJSONError, match="deeper"):
        dumps(cyclic)


def test_dumps_bounds_shared_subvalues() -> None:
    # 2**50 values by reference, built in 50 steps: the walk must stop, not run forever.
    shared: list[Any] = []
    for _ in range(50):
        shared = [shared, shared]
    started = time.monotonic()
    with pytest.raises(StrictJSONError, match="more than"):
        dumps(shared, max_items=10_000)
    assert time.monotonic() - started < 1.0


def test_dumps_of_an_int_over_the_digit_limit_is_a_strict_error() -> None:
    with pytest.raises(StrictJSONError):
        dumps(10**5000)


def test_check_plain_is_the_type_check_of_dumps() -> None:
    check_plain({"a": [1, "b", None]})
    with pytest.raises(StrictJSONError):
        check_plain({"a": Dict()})


def test_loads_from_file_path_without_site_packages() -> None:
    # The sandbox worker loads the module by path under `python -S`.
    path = Path(strictjson.__file__)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('strictjson', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "assert 'gem_graph' not in sys.modules\n"
        "print(m.dumps(m.loads('{\"a\": [1]}')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"a":[1]}'
    assert importlib.util.find_spec("gem_graph.strictjson") is not None


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=200))
def test_fuzz_text_either_parses_or_is_a_strict_error(text: str) -> None:
    with contextlib.suppress(StrictJSONError):
        loads(text)


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_fuzz_bytes_either_parses_or_is_a_strict_error(data: bytes) -> None:
    with contextlib.suppress(StrictJSONError):
        loads(data)


JSON_PIECES = st.sampled_from(
    ["[", "]", "{", "}", ",", ":", '"a"', '"\\ud800"', '"\\ud83d\\ude00"', "1e999", "NaN",
     "-", "0", "2e5", "true", "null", '"', "\\", " ", "9" * 5000, "\ufeff", "\ud800"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(JSON_PIECES, max_size=60).map("".join))
def test_fuzz_json_like_text_either_parses_or_is_a_strict_error(text: str) -> None:
    try:
        value = loads(text)
    except StrictJSONError:
        return
    assert loads(dumps(value)) == value


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None, database=None)
@given(JSON_VALUES)
def test_fuzz_plain_values_round_trip_or_are_rejected_for_surrogates(value: Any) -> None:
    try:
        text = dumps(value)
    except StrictJSONError as exc:
        assert exc.kind == "surrogate"
        return
    assert loads(text) == value
    assert loads(text.encode("utf-8")) == value
