"""Shared fixtures for the unit tests: a small, valid retail support episode.

Each fixture builds fresh objects, so tests may mutate them to derive failing variants.
"""

from __future__ import annotations

import json
from typing import Any

import pytest


def _tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def make_retail_tools() -> list[dict[str, Any]]:
    """Three tools: a lookup by email, an order read, and a cancel (write)."""
    return [
        _tool(
            "find_orders",
            "List the orders of the customer with this email. Fails if no customer matches.",
            {
                "type": "object",
                "properties": {"email": {"type": "string", "description": "The customer's email."}},
                "required": ["email"],
                "additionalProperties": False,
            },
        ),
        _tool(
            "get_order",
            "Return one order with its items, status and total.",
            {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "description": "Order id, e.g. ORD-1001."}
                },
                "required": ["order_id"],
                "additionalProperties": False,
            },
        ),
        _tool(
            "cancel_order",
            "Cancel a pending order and refund it. Fails if the order has shipped.",
            {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "description": "Order id."},
                    "reason": {
                        "type": "string",
                        "enum": ["changed_mind", "ordered_by_mistake", "too_late"],
                        "description": "Why the customer cancels.",
                    },
                    "notify": {
                        "type": "boolean",
                        "description": "Email the customer a confirmation.",
                        "default": True,
                    },
                },
                "required": ["order_id", "reason"],
            },
        ),
    ]


def make_retail_messages() -> list[dict[str, Any]]:
    """A valid, grounded dialogue: look up, confirm, cancel, close."""
    return [
        {
            "role": "system",
            "content": "You are ShopCo's support assistant. Verify the customer by email "
            "before any account action. Pending orders can be cancelled; shipped orders "
            "cannot. Confirm before cancelling. Today is 2025-03-14.",
        },
        {
            "role": "user",
            "content": "Hi, I'd like to cancel order ORD-1001. My email is jane.doe@example.com.",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [_call("call_1", "find_orders", {"email": "jane.doe@example.com"})],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": json.dumps(
                {
                    "orders": [
                        {"order_id": "ORD-1001", "status": "pending", "total": 42.5},
                        {"order_id": "ORD-1002", "status": "shipped", "total": 19.99},
                    ]
                }
            ),
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [_call("call_2", "get_order", {"order_id": "ORD-1001"})],
        },
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": json.dumps(
                {
                    "order_id": "ORD-1001",
                    "status": "pending",
                    "items": [{"sku": "SKU-77A", "quantity": 2}],
                    "total": 42.5,
                    "placed_at": "2025-03-12T16:05:00+00:00",
                }
            ),
        },
        {
            "role": "assistant",
            "content": "Order ORD-1001 (2 x SKU-77A, $42.50, placed on March 12) is still "
            "pending, so it can be cancelled. Shall I cancel it?",
        },
        {"role": "user", "content": "Yes please, I changed my mind."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                _call("call_3", "cancel_order", {"order_id": "ORD-1001", "reason": "changed_mind"})
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_3",
            "content": json.dumps(
                {"order_id": "ORD-1001", "status": "cancelled", "refund_id": "ref_1"}
            ),
        },
        {
            "role": "assistant",
            "content": "Done: ORD-1001 is cancelled and refund ref_1 is on its way.",
        },
        {"role": "user", "content": "Great, thanks. That's all."},
        {"role": "assistant", "content": "You're welcome, have a nice day!"},
    ]


RETAIL_SOURCE = """Cancelling an order
Look up your orders with the email address on your account. Open an order to see its
status, items and total. Pending orders can be cancelled; shipped orders cannot.
Choose a reason and confirm: a cancellation is final and the order is refunded.
"""
"""The source text the retail blueprint quotes."""
RETAIL_QUOTES = {
    "find_orders": "Look up your orders with the email address on your account.",
    "get_order": "Open an order to see its status, items and total.",
    "cancel_order": "Choose a reason and confirm: a cancellation is final",
}
PENDING_ONLY = "Pending orders can be cancelled; shipped orders cannot."


def make_retail_drafts() -> list[dict[str, Any]]:
    """The retail tools as the extraction model drafts them (`ExtractedTool` dicts)."""
    return [
        {
            "name": tool["function"]["name"],
            "description": tool["function"]["description"],
            "parameters_json": json.dumps(tool["function"]["parameters"]),
            "read_only": tool["function"]["name"] != "cancel_order",
            "confirm_before": tool["function"]["name"] == "cancel_order",
            "quote": RETAIL_QUOTES[tool["function"]["name"]],
        }
        for tool in make_retail_tools()
    ]


def make_retail_blueprint() -> dict[str, Any]:
    """A valid `ExtractOutput.model_dump()` for the retail tools."""
    return {
        "workflows": [
            {
                "name": "cancel_order",
                "description": "Cancel a customer's pending order.",
                "steps": [
                    {
                        "step": "Find the customer's orders by email.",
                        "quote": RETAIL_QUOTES["find_orders"],
                    },
                    {
                        "step": "Check the order's status with get_order.",
                        "quote": RETAIL_QUOTES["get_order"],
                    },
                    {"step": "Cancel it if it is still pending.", "quote": PENDING_ONLY},
                ],
                "graph": "(find_orders)->(get_order)->(cancel_order)",
                "constraints": ["Only pending orders can be cancelled."],
                "example_calls": [
                    {"tool": "find_orders", "arguments_json": '{"email": "jane@example.com"}'},
                    {"tool": "get_order", "arguments_json": '{"order_id": "ORD-1001"}'},
                    {
                        "tool": "cancel_order",
                        "arguments_json": '{"order_id": "ORD-1001", "reason": "changed_mind"}',
                    },
                ],
            }
        ],
        "tools": make_retail_drafts(),
        "rules": [
            {
                "rule": "An order can be cancelled only while its status is pending.",
                "quote": PENDING_ONLY,
            }
        ],
    }


@pytest.fixture
def retail_tools() -> list[dict[str, Any]]:
    return make_retail_tools()


@pytest.fixture
def retail_messages() -> list[dict[str, Any]]:
    return make_retail_messages()


@pytest.fixture
def retail_drafts() -> list[dict[str, Any]]:
    return make_retail_drafts()


@pytest.fixture
def retail_blueprint() -> dict[str, Any]:
    return make_retail_blueprint()


@pytest.fixture
def retail_source() -> str:
    return RETAIL_SOURCE
