"""Structural checks on a dialogue in OpenAI chat format: roles, turn order and tool calls.

Public API:
- `check_trajectory(messages, tools) -> list[ProblemDict]`: every rule below; codes
  `turn_order`, `missing_tool_response`, `orphan_tool_response`, `unknown_tool`,
  `malformed_arguments`, `invalid_arguments` (and `invalid_tool_schema` when a called tool's
  own schema is unusable).
Reading messages and calls (as written, garbage included) is `checks/messages.py`.

Rules (the architecture's turn order):
- exactly one system message, at index 0; roles are system, user, assistant or tool;
- an assistant turn follows each user turn and each block of tool messages;
- each call (with a unique id) is answered by exactly one tool message with the matching
  `tool_call_id`, in the block of tool messages directly after the assistant message;
- a user turn follows only an assistant turn without calls, never a tool turn;
- at least one user turn; the dialogue ends with an assistant message without calls;
- an assistant message has text content or tool calls (content may be None with calls);
- calls name defined tools and carry a JSON object string that validates against the tool's
  schema (see `arguments.check_call`).
Extra keys on messages are ignored.
"""

from __future__ import annotations

from typing import Any

from gem_graph.checks.arguments import check_call
from gem_graph.checks.messages import (
    ROLES,
    _calls,
    _role,
    call_arguments,
    call_name,
    iter_tool_calls,
    message_text,
)
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.tools import tool_parameters


def check_trajectory(messages: Any, tools: Any) -> list[ProblemDict]:
    """All structural problems of a dialogue against its tool list (never raises)."""
    if not isinstance(messages, list):
        return [
            problem(
                "turn_order",
                f"messages must be a list of chat messages, got {type(messages).__name__}",
                "messages",
            )
        ]
    if not messages:
        return [problem("turn_order", "the dialogue has no messages", "messages")]
    problems = _shape_problems(messages)
    problems.extend(_order_problems(messages))
    tools_by_name = tool_parameters(tools)
    for site in iter_tool_calls(messages):
        where = f"messages[{site.message_index}].tool_calls[{site.call_index}]"
        problems.extend(
            check_call(call_name(site.call), call_arguments(site.call), tools_by_name, where)
        )
    return problems


def _shape_problems(messages: list[Any]) -> list[ProblemDict]:
    """Per-message well-formedness: role, content, and the shape of tool calls."""
    problems: list[ProblemDict] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            problems.append(
                problem(
                    "turn_order",
                    f"each message must be an object with a role, got {type(message).__name__}",
                    where,
                )
            )
            continue
        role = _role(message)
        if role is None:
            problems.append(
                problem(
                    "turn_order",
                    f"role {message.get('role')!r} is not one of {', '.join(ROLES)}",
                    where,
                )
            )
            continue
        calls = message.get("tool_calls")
        has_text = bool(message_text(message).strip())
        if role != "assistant":
            if calls:
                problems.append(
                    problem(
                        "turn_order",
                        f"a {role} message cannot carry "
                        "tool_calls; only assistant messages call tools",
                        where,
                    )
                )
            if role == "tool" and not isinstance(message.get("content"), str):
                problems.append(
                    problem(
                        "turn_order",
                        "a tool message's content must be a string (the JSON of the tool's output)",
                        where,
                    )
                )
            elif role != "tool" and not has_text:
                problems.append(
                    problem("turn_order", f"the {role} message has no text content", where)
                )
            continue
        if calls is not None and not isinstance(calls, list):
            problems.append(
                problem(
                    "turn_order",
                    f"tool_calls must be a list of calls or null, got {type(calls).__name__}",
                    where,
                )
            )
        if not has_text and not _calls(message):
            problems.append(
                problem(
                    "turn_order",
                    "the assistant message has neither text content nor tool calls",
                    where,
                )
            )
        for call_index, call in enumerate(_calls(message)):
            at = f"{where}.tool_calls[{call_index}]"
            if not isinstance(call, dict):
                problems.append(
                    problem(
                        "turn_order",
                        "a tool call must be an object "
                        '{"id", "type": "function", "function": {"name", '
                        '"arguments"}}',
                        at,
                    )
                )
                continue
            if not isinstance(call.get("id"), str) or not call["id"]:
                problems.append(
                    problem(
                        "turn_order",
                        "the tool call has no id; give each "
                        "call a unique string id that its tool message "
                        "repeats as tool_call_id",
                        at,
                    )
                )
            if call.get("type", "function") != "function":
                problems.append(
                    problem(
                        "turn_order",
                        f"tool call type must be 'function', got {call.get('type')!r}",
                        at,
                    )
                )
    return problems


def _order_problems(messages: list[Any]) -> list[ProblemDict]:
    """Turn-order problems: the state machine of the architecture's rules."""
    problems: list[ProblemDict] = []
    if _role(messages[0]) != "system":
        problems.append(
            problem(
                "turn_order",
                "the first message must be the system prompt (role 'system')",
                "messages[0]",
            )
        )
    previous: str | None = None  # system | user | assistant | calls | tool
    pending: dict[str, int] = {}  # call id -> index of the issuing assistant message
    answered: set[str] = set()
    issued: dict[str, int] = {}
    user_turns = 0

    def close_block() -> None:
        for call_id, owner in pending.items():
            problems.append(
                problem(
                    "missing_tool_response",
                    f"tool call {call_id!r} has no "
                    "tool message answering it; each call must be followed "
                    "by exactly one tool message with tool_call_id "
                    f"{call_id!r} before the next turn",
                    f"messages[{owner}]",
                )
            )
        pending.clear()

    for index, message in enumerate(messages):
        role = _role(message)
        if role is None:
            continue  # reported by the shape check
        where = f"messages[{index}]"
        if role == "tool":
            call_id = message.get("tool_call_id")
            if previous not in ("calls", "tool"):
                problems.append(
                    problem(
                        "orphan_tool_response",
                        "this tool message does not "
                        "directly follow an assistant message with tool calls",
                        where,
                    )
                )
            elif isinstance(call_id, str) and call_id in pending:
                del pending[call_id]
                answered.add(call_id)
            elif isinstance(call_id, str) and call_id in answered:
                problems.append(
                    problem(
                        "orphan_tool_response",
                        f"call {call_id!r} is already "
                        "answered; each call gets exactly one tool message",
                        where,
                    )
                )
            else:
                problems.append(
                    problem(
                        "orphan_tool_response",
                        f"tool_call_id {call_id!r} "
                        "matches no call of the preceding assistant message",
                        where,
                    )
                )
            previous = "tool"
            continue
        close_block()
        answered.clear()
        if role == "system":
            if index > 0:
                problems.append(
                    problem(
                        "turn_order",
                        "only one system message is allowed, and only as the first message",
                        where,
                    )
                )
            previous = "system"
        elif role == "user":
            user_turns += 1
            if previous == "user":
                problems.append(
                    problem(
                        "turn_order",
                        "two user turns in a row; an assistant turn must answer each user turn",
                        where,
                    )
                )
            elif previous == "tool":
                problems.append(
                    problem(
                        "turn_order",
                        "a user turn directly after a tool "
                        "turn; the assistant must respond to the tool output "
                        "first",
                        where,
                    )
                )
            previous = "user"
        else:
            if previous == "assistant":
                problems.append(
                    problem(
                        "turn_order",
                        "two assistant turns in a row; after "
                        "an assistant reply without tool calls the user speaks "
                        "next",
                        where,
                    )
                )
            previous = (
                "calls"
                if _register_calls(message, index, pending, issued, problems)
                else "assistant"
            )
    close_block()
    if previous != "assistant":
        problems.append(
            problem(
                "turn_order",
                "the dialogue must end with an assistant message without tool calls",
                f"messages[{len(messages) - 1}]",
            )
        )
    if user_turns == 0:
        problems.append(problem("turn_order", "the dialogue has no user turn", "messages"))
    return problems


def _register_calls(
    message: dict[str, Any],
    index: int,
    pending: dict[str, int],
    issued: dict[str, int],
    problems: list[ProblemDict],
) -> bool:
    """Record the calls of an assistant message as awaiting answers; True if it has calls."""
    calls = _calls(message)
    for call_index, call in enumerate(calls):
        call_id = call.get("id") if isinstance(call, dict) else None
        if not isinstance(call_id, str) or not call_id:
            continue  # reported by the shape check
        if call_id in issued:
            problems.append(
                problem(
                    "turn_order",
                    f"tool call id {call_id!r} is already used "
                    f"by messages[{issued[call_id]}]; call ids must be unique",
                    f"messages[{index}].tool_calls[{call_index}]",
                )
            )
            continue
        issued[call_id] = index
        pending[call_id] = index
    return bool(calls)
