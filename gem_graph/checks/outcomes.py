"""Outcome claims: the assistant must not report success that did not happen.

Public API:
- `check_outcomes(messages, tools, *, read_only_tools=None) -> list[ProblemDict]` with codes
  (`where` = `messages[i]`, the assistant message that makes the claim):
  - `false_success`: success language about a tool whose call since the last user turn
    returned `{"error": ...}` with no successful call of it afterwards. Success language
    is a form of the tool's verb in a claim ("I've renewed", "has been renewed", "is
    renewed", "renewed successfully") or, when nothing else was written in the turn, a
    generic "done", "all set", "successfully", "went through".
  - `unbacked_action`: a claimed effect of a write tool (a tool not in `read_only_tools`;
    the check is skipped when that is None) with no successful call of a tool with that
    verb earlier in the dialogue: "I've sent your statement", "Your order has been
    cancelled". A perfect or state phrase ("has been cancelled", "is cancelled") whose
    word an earlier tool output uses (`"status": "cancelled"`) may describe that output
    and is not counted; a state phrase counts only next to "done", "all set" or
    "successfully".
A tool's verb is the first word of its name (`cancel_order` → cancelled/canceled), with
synonyms for common ones (transfer → transferred/sent/moved, update → updated/changed);
read verbs (get, list, search, ...) claim nothing. Negated ("could not be cancelled"),
conditional ("would be cancelled", "once it is cancelled") and question sentences claim
nothing. Pure: no I/O, no model.

Known blind spots: paraphrases without the tool's verb ("your money is on its way"),
claims split across sentences, and success stated about the wrong object (the right tool,
the wrong card).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gem_graph import strictjson
from gem_graph.checks import spans
from gem_graph.checks.messages import call_name, message_text
from gem_graph.checks.problems import ProblemDict, problem
from gem_graph.checks.spans import wordset
from gem_graph.checks.tools import tool_parameters

_VERB_FORMS: dict[str, tuple[str, ...]] = {
    "cancel": ("cancelled", "canceled"),
    "book": ("booked",),
    "reserve": ("reserved",),
    "schedule": ("scheduled",),
    "reschedule": ("rescheduled", "moved"),
    "update": ("updated", "changed", "modified"),
    "change": ("changed", "updated"),
    "modify": ("modified", "changed", "updated"),
    "edit": ("edited", "updated"),
    "set": ("set", "updated"),
    "create": ("created", "opened"),
    "open": ("opened", "created"),
    "add": ("added",),
    "delete": ("deleted", "removed"),
    "remove": ("removed", "deleted"),
    "send": ("sent", "transferred"),
    "email": ("emailed", "sent"),
    "pay": ("paid",),
    "refund": ("refunded",),
    "renew": ("renewed", "extended"),
    "extend": ("extended",),
    "freeze": ("froze", "frozen"),
    "unfreeze": ("unfroze", "unfrozen"),
    "block": ("blocked",),
    "unblock": ("unblocked",),
    "lock": ("locked",),
    "unlock": ("unlocked",),
    "transfer": ("transferred", "sent", "moved"),
    "move": ("moved",),
    "submit": ("submitted",),
    "file": ("filed",),
    "register": ("registered",),
    "enroll": ("enrolled",),
    "subscribe": ("subscribed",),
    "unsubscribe": ("unsubscribed",),
    "reset": ("reset",),
    "issue": ("issued",),
    "apply": ("applied",),
    "place": ("placed",),
    "order": ("ordered",),
    "return": ("returned",),
    "activate": ("activated",),
    "deactivate": ("deactivated",),
    "close": ("closed",),
    "approve": ("approved",),
    "reject": ("rejected",),
    "assign": ("assigned",),
    "confirm": ("confirmed",),
    "report": ("reported",),
    "replace": ("replaced",),
    "redeem": ("redeemed",),
    "verify": ("verified",),
    "authenticate": ("authenticated", "verified"),
    "release": ("released",),
    "withdraw": ("withdrew", "withdrawn"),
    "deposit": ("deposited",),
    "ship": ("shipped",),
    "stop": ("stopped",),
    "grant": ("granted",),
    "revoke": ("revoked",),
    "upgrade": ("upgraded",),
    "downgrade": ("downgraded",),
    "rename": ("renamed",),
    "enable": ("enabled",),
    "disable": ("disabled",),
    "restore": ("restored",),
    "archive": ("archived",),
}
_READ_VERBS = wordset(
    "get list find search check show view look lookup fetch read query describe "
    "count calculate compute estimate quote browse retrieve track"
)
_GENERIC_SUCCESS = re.compile(
    r"\b(?:done|all set|all done|successfully|succeeded|went through|gone through|completed|"
    r"taken care of|finished)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(?:not|never|no|unable|failed|fails|fail|cannot|can't|couldn't|wasn't|weren't|isn't|"
    r"aren't|hasn't|haven't|hadn't|didn't|doesn't|don't|won't|wouldn't|error|unfortunately|"
    r"nothing|neither|nor)\b|n't\b",
    re.IGNORECASE,
)
_HYPOTHETICAL = re.compile(
    r"\b(?:if|once|when|whenever|after|before|until|unless|would|could|should|can|will|shall|"
    r"may|might|must|need|needs|want|wants|going to|let me|try|trying|tried|attempt|"
    r"attempted|able|ready|please|to be|whether|as soon as|about to|do you|shall i)\b|'ll\b",
    re.IGNORECASE,
)
_CLAUSE_SPLIT = re.compile(
    r"[,;:()\u2014\u2013]|\s-\s|\b(?:and|but|so|because|while|although|though|whereas)\b",
    re.IGNORECASE,
)


@dataclass
class _Call:
    """One executed call: which tool, whether it succeeded, where its output is."""

    tool: str
    ok: bool
    where: str
    error: str = ""


@dataclass
class _State:
    """The walk's memory: the calls so far and the words tool outputs used."""

    write_tools: set[str] | None
    calls: list[_Call] = field(default_factory=list)
    turn_start: int = 0  # index into `calls` of the first call after the last user turn
    output_words: set[str] = field(default_factory=set)


def check_outcomes(
    messages: Any, tools: Any, *, read_only_tools: Iterable[str] | None = None
) -> list[ProblemDict]:
    """`false_success` and `unbacked_action` problems (see the module docstring)."""
    if not isinstance(messages, list):
        return []
    names = _tool_names(messages, tools)
    read_only = None if read_only_tools is None else set(read_only_tools)
    state = _State(write_tools=None if read_only is None else names - read_only)
    pending: dict[str, str] = {}
    problems: list[ProblemDict] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role, text = message.get("role"), message_text(message)
        if role == "user":
            state.turn_start = len(state.calls)
        elif role == "tool":
            tool = pending.get(str(message.get("tool_call_id")), "")
            state.calls.append(_result(tool, text, f"messages[{index}]"))
            state.output_words |= {w.casefold() for w in re.findall(r"[^\W_]+", text)}
        elif role == "assistant":
            if text.strip():
                problems.extend(_check_outcomes(text, state, f"messages[{index}]"))
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict) and isinstance(call_name(call), str):
                    pending[str(call.get("id"))] = str(call_name(call))
    return problems


def _tool_names(messages: list[Any], tools: Any) -> set[str]:
    names = set(tool_parameters(tools))
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("tool_calls"), list):
            for call in message["tool_calls"]:
                if isinstance(call, dict) and isinstance(call_name(call), str):
                    names.add(str(call_name(call)))
    return names


def _result(tool: str, content: str, where: str) -> _Call:
    """A tool message as a call result: `{"error": ...}` is a failure."""
    try:
        value = strictjson.loads(content)
    except strictjson.StrictJSONError:
        return _Call(tool, True, where)
    if isinstance(value, dict) and "error" in value and len(value) == 1:
        return _Call(tool, False, where, str(value["error"])[:120])
    return _Call(tool, True, where)


def _verb_of(tool: str) -> tuple[str, tuple[str, ...]] | None:
    """The action verb of a tool name and the forms that say it happened; None for reads."""
    words = [w for w in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", tool) if w]
    words = [w.casefold() for w in words]
    if not words or words[0] in _READ_VERBS:
        return None
    for word in words:
        if word in _VERB_FORMS:
            return word, _VERB_FORMS[word]
    verb = words[0]
    if len(verb) < 3:
        return None
    if verb.endswith("e"):
        return verb, (verb + "d",)
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb, (verb[:-1] + "ied",)
    return verb, (verb + "ed",)


STRONG, PERFECT, STATE = 3, 2, 1
"""How surely a phrase claims the action: "I cancelled" / "has been cancelled" / "is
cancelled" (the last may only describe a state)."""


def _claims(text: str, forms: tuple[str, ...]) -> list[tuple[str, str, int]]:
    """(phrase, form, strength) for each affirmative clause of `text` that says the action
    happened (see `STRONG`); "now", "just" or "successfully" make a phrase strong."""
    verb = "(?P<form>" + "|".join(re.escape(f) for f in forms) + ")"
    strong = re.compile(
        rf"\b(?:i|we)(?:'ve| have| had)?\s+(?:(?:just|now|already|successfully|also|"
        rf"gone ahead and|went ahead and)\s+)*{verb}\b"
        rf"|\bsuccessfully\s+{verb.replace('form', 'form2')}\b"
        rf"|\b{verb.replace('form', 'form3')}\s+successfully\b"
        rf"|\b(?:has|have|'s|is|are|'re)\s+(?:(?:now|just)\s+)+(?:been\s+)?"
        rf"{verb.replace('form', 'form4')}\b",
        re.IGNORECASE,
    )
    perfect = re.compile(
        rf"\b(?:has|have|had|'s)\s+(?:(?:already|also)\s+)*been\s+(?:fully\s+)?{verb}\b",
        re.IGNORECASE,
    )
    state = re.compile(
        rf"\b(?:is|are|was|were|'s|'re)\s+(?:(?:all|officially)\s+)*{verb}\b"
        rf"|^\s*{verb.replace('form', 'form2')}\s*$",
        re.IGNORECASE,
    )
    found: list[tuple[str, str, int]] = []
    for clause in _affirmative_clauses(text):
        for pattern, strength in ((strong, STRONG), (perfect, PERFECT), (state, STATE)):
            match = pattern.search(clause)
            if match:
                groups = match.groupdict()
                form = next(v for k, v in groups.items() if v and k.startswith("form")).casefold()
                found.append((match.group(0).strip(), form, strength))
                break
    return found


def _affirmative_clauses(text: str) -> list[str]:
    """The clauses of non-question sentences that are neither negated nor conditional."""
    text = text.replace("’", "'")
    clauses: list[str] = []
    for start, end in spans.sentences(text):
        sentence = text[start:end].strip()
        if sentence.endswith("?"):
            continue
        for clause in _CLAUSE_SPLIT.split(sentence):
            if clause.strip() and not (_NEGATION.search(clause) or _HYPOTHETICAL.search(clause)):
                clauses.append(clause.strip())
    return clauses


def _check_outcomes(text: str, state: _State, where: str) -> list[ProblemDict]:
    problems: list[ProblemDict] = []
    turn = state.calls[state.turn_start :]
    failed: dict[str, _Call] = {}
    for call in turn:
        if call.ok:
            failed.pop(call.tool, None)
        else:
            failed[call.tool] = call
    claimed: set[str] = set()
    for tool, call in failed.items():
        verb = _verb_of(tool)
        if verb is None:
            continue
        for phrase, form, strength in _claims(text, verb[1]):
            if strength == STRONG or form not in state.output_words:
                problems.append(_false_success(phrase, call, where))
                claimed.add(tool)
                break
    others = [
        c
        for c in turn
        if c.ok
        and c.tool not in failed
        and (state.write_tools is None or c.tool in state.write_tools)
    ]
    if failed and not claimed and not others:
        for clause in _affirmative_clauses(text):
            match = _GENERIC_SUCCESS.search(clause)
            if match:
                call = next(iter(failed.values()))
                problems.append(_false_success(match.group(0), call, where))
                claimed.add(call.tool)
                break
    if state.write_tools is not None:
        problems.extend(_unbacked(text, state, claimed, where))
    return problems


def _false_success(phrase: str, call: _Call, where: str) -> ProblemDict:
    return problem(
        "false_success",
        f"the assistant reports success ({phrase!r}), but the call to {call.tool!r} answered "
        f"in {call.where} returned an error ({call.error!r}) and no later call of it "
        "succeeded; say what failed and what the user can do instead",
        where,
    )


def _unbacked(text: str, state: _State, claimed: set[str], where: str) -> list[ProblemDict]:
    """Claimed effects of write tools that no successful call backs. A perfect ("has been
    cancelled") or state ("is cancelled") phrase whose word a tool output used may describe
    that output; a state phrase counts only next to "done", "all set" or "successfully"."""
    assert state.write_tools is not None
    problems: list[ProblemDict] = []
    done = {c.tool for c in state.calls if c.ok}
    done_forms = {f for tool in done if (verb := _verb_of(tool)) for f in verb[1]}
    announced = any(_GENERIC_SUCCESS.search(c) for c in _affirmative_clauses(text))
    seen_forms: set[str] = set()
    for tool in sorted(state.write_tools - claimed):
        verb = _verb_of(tool)
        if verb is None or tool in done:
            continue
        for phrase, form, strength in _claims(text, verb[1]):
            if form in done_forms or form in seen_forms:
                continue
            if strength < STRONG and form in state.output_words:
                continue  # describes a state a tool reported, not an action taken
            if strength == STATE and not announced:
                continue
            seen_forms.add(form)
            problems.append(
                problem(
                    "unbacked_action",
                    f"the assistant claims an effect of {tool!r} ({phrase!r}), but no "
                    f"successful call of {tool!r} came before; call the tool first, or do "
                    "not claim the action",
                    where,
                )
            )
            break
    return problems
