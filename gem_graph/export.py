"""Export formats: records → OpenAI chat, ShareGPT (LLaMA-Factory), Hermes text, or tasks.

Every `to_*` function is pure: one record dict in, one JSON-native row out. A record that
a format cannot represent raises `ExportError` naming the reason; `export_records` writes
JSONL and either raises or collects those errors.

Choices each format makes, so a user knows what the rows hold:

- `openai`: `{"messages", "tools"}`. Messages keep only `role`, `content`, `tool_calls`
  (assistant, when it calls) and `tool_call_id` (tool). `content` is always a string
  (`""` for an assistant turn that only calls tools) and `arguments` always a JSON string,
  so every row has the same Arrow types and a JSONL of many records loads with
  `datasets.load_dataset("json", ...)`. `tools` is a JSON *string* by default: JSON
  Schemas differ from tool to tool, and Arrow would merge them into one struct, filling
  every tool with the other tools' properties as nulls. TRL decodes a string `tools`
  column; pass `tools_as_json=False` for a plain list (e.g. OpenAI's fine-tuning API).
- `sharegpt`: LLaMA-Factory's tool format: `conversations` of `{"from", "value"}` with
  `human`/`observation` in the 1st, 3rd, … turns (indexes 0, 2, …) and `gpt`/`function_call`
  in the 2nd, 4th, …,
  an even count, plus `system` and `tools` (a JSON string of the function definitions).
  To make roles alternate exactly:
  * each call becomes its own `function_call` turn (`{"name", "arguments": {...}}`),
    followed by its own `observation`; an assistant message with several calls is split
    into call/observation pairs in call order, the order in which they were executed;
  * assistant text sent together with calls is dropped: no `gpt` turn can precede a
    `function_call` turn (both sit at odd indexes) and the call value must be pure JSON;
  * adjacent turns of the same role (two user or two text-only assistant messages) are
    joined with a blank line;
  * a trailing `human` or `observation` turn (nothing answers it) is dropped.
- `hermes`: `{"text"}`: ChatML (`<|im_start|>role\\n…<|im_end|>`) with the tools as
  JSON lines inside `<tools></tools>` in the system turn, each call as
  `<tool_call>{"name", "arguments"}</tool_call>` in the assistant turn, and tool results
  as `<tool_response>…</tool_response>`. Consecutive tool results share one turn whose
  role is `user`, as in the Qwen templates the paper fine-tuned (Hermes-2-Pro models
  use `tool`: pass `tool_role="tool"`). `parse_hermes` reads the calls back.
- `tasks`: an evaluation task per record: `instruction` is the FIRST user turn (the
  opening request); `user_turns` lists every user turn in order, for a scripted or
  simulated user; plus the environment reference, the scenario (clock and extra rows),
  tools, the system prompt, and the expected final state hash and row diff. Only
  executed records (with `verification.final_state_sha256`) can become tasks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

FORMATS = ("openai", "sharegpt", "hermes", "tasks")

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
HERMES_TOOLS_PREAMBLE = (
    "# Tools\n\n"
    "You can call functions to help with the user's request. Their signatures are listed "
    "below, one JSON object per line, inside <tools></tools> tags:\n"
)
HERMES_CALL_INSTRUCTIONS = (
    "To call a function, answer with a JSON object holding its name and its arguments "
    "inside <tool_call></tool_call> tags, one block per call:\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <arguments-object>}\n</tool_call>'
)


class ExportError(ValueError):
    """A record that the requested format cannot represent; the message says why."""


# ---- shared helpers -----------------------------------------------------------------------


def _messages(record: dict[str, Any]) -> list[dict[str, Any]]:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ExportError("record has no messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "user",
            "assistant",
            "tool",
        ):
            raise ExportError(f"messages[{index}] has no valid role")
    return messages


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _system_prompt(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The leading system message(s) joined, and the rest; a later system turn is refused."""
    index = 0
    parts = []
    while index < len(messages) and messages[index]["role"] == "system":
        parts.append(_text(messages[index].get("content")))
        index += 1
    rest = messages[index:]
    for offset, message in enumerate(rest):
        if message["role"] == "system":
            raise ExportError(
                f"messages[{index + offset}]: a system message after the dialogue started"
            )
    return "\n\n".join(p for p in parts if p), rest


def _calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ExportError("tool_calls must be a list")
    return calls


def _call_name(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise ExportError(f"a tool call has no function name: {call!r:.200}")
    return name


def _call_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments as an object (they travel as a JSON string in records)."""
    raw = call["function"].get("arguments")
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except ValueError as exc:
        raise ExportError(f"call {_call_name(call)!r}: arguments are not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ExportError(f"call {_call_name(call)!r}: arguments are not a JSON object")
    return value


def _tool_functions(tools: Any) -> list[dict[str, Any]]:
    """The function definitions of OpenAI-format tools (`{"type": "function", "function"}`)."""
    if not tools:
        return []
    if not isinstance(tools, list):
        raise ExportError("tools must be a list in OpenAI function format")
    functions = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            raise ExportError(f"a tool is not in OpenAI function format: {tool!r:.200}")
        functions.append(function)
    return functions


def _responses(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tool messages by the id of the call they answer."""
    found: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message["role"] == "tool":
            call_id = str(message.get("tool_call_id"))
            if call_id in found:
                raise ExportError(f"two tool messages answer call {call_id!r}")
            found[call_id] = message
    return found


# ---- openai -------------------------------------------------------------------------------


def _openai_call(call: dict[str, Any]) -> dict[str, Any]:
    name = _call_name(call)
    arguments = call["function"].get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(_call_arguments(call), ensure_ascii=False)
    return {
        "id": str(call.get("id") or ""),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def to_openai(record: dict[str, Any], *, tools_as_json: bool = True) -> dict[str, Any]:
    """`{"messages", "tools"}` in OpenAI chat format, normalised for HF datasets and TRL."""
    out: list[dict[str, Any]] = []
    for message in _messages(record):
        role = message["role"]
        row: dict[str, Any] = {"role": role, "content": _text(message.get("content"))}
        if role == "assistant" and _calls(message):
            row["tool_calls"] = [_openai_call(c) for c in _calls(message)]
        if role == "tool":
            if not message.get("tool_call_id"):
                raise ExportError("a tool message has no tool_call_id")
            row["tool_call_id"] = str(message["tool_call_id"])
        out.append(row)
    tools = list(record.get("tools") or [])
    return {
        "messages": out,
        "tools": json.dumps(tools, ensure_ascii=False) if tools_as_json else tools,
    }


# ---- sharegpt (LLaMA-Factory) -------------------------------------------------------------

_EVEN_ROLES = ("human", "observation")
_ODD_ROLES = ("gpt", "function_call")


def _sharegpt_turns(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The raw turns in dialogue order: one function_call + observation pair per call."""
    responses = _responses(messages)
    answered: set[str] = set()
    turns: list[tuple[str, str]] = []
    for message in messages:
        role = message["role"]
        if role == "user":
            turns.append(("human", _text(message.get("content"))))
        elif role == "assistant" and _calls(message):
            for call in _calls(message):
                call_id = str(call.get("id"))
                response = responses.get(call_id)
                if response is None:
                    raise ExportError(f"call {call_id!r} has no tool response")
                answered.add(call_id)
                value = {"name": _call_name(call), "arguments": _call_arguments(call)}
                turns.append(("function_call", json.dumps(value, ensure_ascii=False)))
                turns.append(("observation", _text(response.get("content"))))
        elif role == "assistant":
            turns.append(("gpt", _text(message.get("content"))))
    orphans = sorted(set(responses) - answered)
    if orphans:
        raise ExportError(f"tool messages answer no call: {', '.join(orphans)}")
    return turns


def _alternate(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merge or drop turns so roles alternate as LLaMA-Factory requires (see module doc)."""
    fixed: list[tuple[str, str]] = []
    for role, value in turns:
        if fixed and (fixed[-1][0] in _ODD_ROLES) == (role in _ODD_ROLES):
            previous, text = fixed[-1]
            if previous == role and role in ("human", "gpt"):
                fixed[-1] = (role, f"{text}\n\n{value}" if text and value else text or value)
                continue
            if previous == "gpt" and role == "function_call":
                fixed[-1] = (role, value)  # text before a call has no place of its own
                continue
            raise ExportError(
                f"turn {len(fixed)}: {role!r} cannot follow {previous!r} in LLaMA-Factory's "
                "sharegpt format"
            )
        if not fixed and role not in _EVEN_ROLES:
            raise ExportError(f"the conversation must open with a user turn, not {role!r}")
        fixed.append((role, value))
    while fixed and fixed[-1][0] in _EVEN_ROLES:
        fixed.pop()
    if not fixed:
        raise ExportError("no assistant turn to train on")
    return fixed


def to_sharegpt(record: dict[str, Any]) -> dict[str, Any]:
    """`{"conversations", "system", "tools"}` in LLaMA-Factory's sharegpt tool format."""
    system, rest = _system_prompt(_messages(record))
    turns = _alternate(_sharegpt_turns(rest))
    return {
        "conversations": [{"from": role, "value": value} for role, value in turns],
        "system": system,
        "tools": json.dumps(_tool_functions(record.get("tools")), ensure_ascii=False),
    }


# ---- hermes -------------------------------------------------------------------------------


def _chatml(role: str, content: str) -> str:
    return f"{IM_START}{role}\n{content}{IM_END}\n"


def _hermes_system(system: str, tools: list[dict[str, Any]]) -> str:
    if not tools:
        return system
    lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    block = f"{HERMES_TOOLS_PREAMBLE}<tools>\n{lines}\n</tools>\n\n{HERMES_CALL_INSTRUCTIONS}"
    return f"{system}\n\n{block}" if system else block


def _hermes_call(call: dict[str, Any]) -> str:
    value = {"name": _call_name(call), "arguments": _call_arguments(call)}
    return f"<tool_call>\n{json.dumps(value, ensure_ascii=False)}\n</tool_call>"


def to_hermes(record: dict[str, Any], *, tool_role: str = "user") -> dict[str, Any]:
    """`{"text"}`: the dialogue rendered with the Hermes tool-calling template (ChatML)."""
    system, rest = _system_prompt(_messages(record))
    tools = list(record.get("tools") or [])
    _tool_functions(tools)  # validates the format
    parts = [_chatml("system", _hermes_system(system, tools))] if system or tools else []
    pending: list[str] = []
    for message in rest:
        role = message["role"]
        if role == "tool":
            pending.append(f"<tool_response>\n{_text(message.get('content'))}\n</tool_response>")
            continue
        if pending:
            parts.append(_chatml(tool_role, "\n".join(pending)))
            pending = []
        content = _text(message.get("content"))
        if role == "assistant" and _calls(message):
            blocks = [_hermes_call(c) for c in _calls(message)]
            content = "\n".join([content, *blocks] if content else blocks)
        parts.append(_chatml(role, content))
    if pending:
        parts.append(_chatml(tool_role, "\n".join(pending)))
    return {"text": "".join(parts)}


_ASSISTANT_TURN = re.compile(
    re.escape(IM_START) + r"assistant\n(.*?)" + re.escape(IM_END), re.DOTALL
)
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_hermes(text: str) -> list[dict[str, Any]]:
    """The calls of every assistant turn of a Hermes text: `[{"name", "arguments"}]`, in order.

    Raises `ExportError` for a `<tool_call>` block that is not a JSON object with a name.
    """
    calls: list[dict[str, Any]] = []
    for turn in _ASSISTANT_TURN.finditer(text):
        for block in _TOOL_CALL.finditer(turn.group(1)):
            try:
                value = json.loads(block.group(1))
            except ValueError as exc:
                raise ExportError(f"a <tool_call> block is not JSON: {exc}") from None
            if not isinstance(value, dict) or not isinstance(value.get("name"), str):
                raise ExportError("a <tool_call> block has no function name")
            arguments = value.get("arguments", {})
            if isinstance(arguments, str):
                arguments = json.loads(arguments)
            calls.append({"name": value["name"], "arguments": arguments})
    return calls


# ---- tasks --------------------------------------------------------------------------------


def to_task(record: dict[str, Any]) -> dict[str, Any]:
    """An evaluation task: the request, the environment and the expected final state."""
    system, rest = _system_prompt(_messages(record))
    user_turns = [_text(m.get("content")) for m in rest if m["role"] == "user"]
    if not user_turns:
        raise ExportError("record has no user turn")
    verification = record.get("verification") or {}
    expected = verification.get("final_state_sha256")
    if not expected:
        raise ExportError(
            "record was not executed (no verification.final_state_sha256); "
            "tasks need a run with execution on"
        )
    environment = record.get("environment") or {}
    if not environment.get("name"):
        raise ExportError("record names no environment")
    return {
        "id": record.get("id"),
        "instruction": user_turns[0],
        "user_turns": user_turns,
        "environment": {"name": environment["name"], "sha256": environment.get("sha256")},
        "scenario": record.get("scenario") or {"now": None, "rows": {}},
        "tools": list(record.get("tools") or []),
        "system": system,
        "expected_final_state_sha256": expected,
        "expected_state_diff": verification.get("state_diff") or {},
    }


# ---- writing ------------------------------------------------------------------------------

EXPORTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "openai": to_openai,
    "sharegpt": to_sharegpt,
    "hermes": to_hermes,
    "tasks": to_task,
}


def export_records(
    records: Iterable[dict[str, Any]],
    fmt: str,
    out: TextIO,
    *,
    errors: list[str] | None = None,
) -> int:
    """Write one JSON line per record in format `fmt`; returns the number of lines written.

    A record the format cannot represent raises `ExportError`, unless `errors` is given:
    then its id and reason are appended there and the record is skipped.
    """
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    written = 0
    for record in records:
        try:
            row = exporter(record)
        except ExportError as exc:
            if errors is None:
                raise ExportError(f"record {record.get('id')!r}: {exc}") from None
            errors.append(f"{record.get('id')!r}: {exc}")
            continue
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        written += 1
    return written


def _run_records(run_dir: Path) -> Iterator[dict[str, Any]]:
    """The kept records of a run folder: its run store, or else a `records.jsonl` in it."""
    from gem_graph.run.store import STORE_FILE, RunStore

    if (run_dir / STORE_FILE).is_file():
        with RunStore(run_dir) as store:
            yield from store.iter_records()
        return
    jsonl = run_dir / "records.jsonl"
    if not jsonl.is_file():
        raise FileNotFoundError(f"{run_dir}: no run store ({STORE_FILE}) and no records.jsonl")
    with jsonl.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


@dataclass(frozen=True)
class RunExport:
    """What `export_run` wrote: the number of rows, and each skipped record's id and reason."""

    written: int
    skipped: list[str]


class UnusableRun(Exception):
    """The format is unknown, or the run folder cannot be read; the message says which."""


def export_run(run_dir: Path, fmt: str, out: Path | TextIO) -> RunExport:
    """Write a run's records in `fmt` to the file `out` (created with its folder) or stream.

    Records a format cannot represent are skipped and listed in the result. Raises
    `UnusableRun` for an unknown format or a folder that holds no readable run; nothing
    is created then.
    """
    if fmt not in EXPORTERS:
        raise UnusableRun(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not Path(run_dir).is_dir():
        raise UnusableRun(f"{run_dir}: not a run folder")
    from gem_graph.run.store import StoreError

    records = _run_records(Path(run_dir))
    skipped: list[str] = []
    try:
        if isinstance(out, Path):
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", encoding="utf-8") as handle:
                written = export_records(records, fmt, handle, errors=skipped)
        else:
            written = export_records(records, fmt, out, errors=skipped)
    except (FileNotFoundError, StoreError, ValueError) as exc:
        raise UnusableRun(str(exc)) from None
    return RunExport(written=written, skipped=skipped)
