"""Meta-validation of tool parameter schemas: located errors, drafts by `$schema`, no fetching."""

from __future__ import annotations

import socket

import pytest

from gem_graph.checks.arguments import argument_problems
from gem_graph.checks.metaschema import metaschema_error

VALID = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": "^o[0-9]+$"},
        "items": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "when": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
    },
    "required": ["order_id"],
    "additionalProperties": False,
}


def test_a_valid_schema_passes():
    assert metaschema_error(VALID) is None


@pytest.mark.parametrize(
    ("schema", "location", "said"),
    [
        ({"type": "strng"}, "'type'", "anyOf"),
        ({"properties": {"qty": {"minimum": "1"}}}, "'properties/qty/minimum'", "number"),
        ({"properties": {"tags": {"items": 3}}}, "'properties/tags/items'", "boolean"),
        ({"required": "order_id"}, "'required'", "array"),
    ],
)
def test_an_invalid_schema_is_reported_with_its_location(schema, location, said):
    error = metaschema_error(schema)
    assert error is not None
    assert error.startswith(f"not a valid JSON Schema at {location}: ")
    assert said in error


def test_the_draft_follows_dollar_schema():
    # A list under "items" is valid in draft 7 (tuple validation) but not in 2020-12.
    tuple_items = {"type": "array", "items": [{"type": "string"}]}
    assert metaschema_error(tuple_items) is not None
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", **tuple_items}
    assert metaschema_error(draft7) is None


def test_an_unknown_dollar_schema_is_refused_without_a_download():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.2)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/metaschema"
        error = metaschema_error({"$schema": url, "type": "object"})
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody came to fetch it
    assert error == f"unknown $schema {url!r}; leave $schema out (JSON Schema 2020-12)"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_values_json_cannot_hold_are_an_error_not_an_exception(value):
    assert metaschema_error({"type": "number", "minimum": value}) is not None


def test_arguments_are_not_validated_against_an_invalid_schema():
    problems = argument_problems(
        "f", {"qty": 1}, {"type": "object", "properties": {"qty": {"type": "nmber"}}}, "m[1]"
    )
    assert [p["code"] for p in problems] == ["invalid_tool_schema"]
