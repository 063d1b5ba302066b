"""Nodes and policies the graph factories share: intake, failure handling, retries, sandbox,
and the validator loops of the LLM stages (wired from the stage registry).

The document graph and the synthesizer graph are built from these, so a document is
validated, retried and rejected the same way whichever mode produces its trajectory.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.errors import NodeError
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, RetryPolicy
from pydantic import ValidationError

from gem_graph.checks.problems import problem
from gem_graph.llm import StructuredLLM, is_retryable
from gem_graph.pipeline import BY_NAME, LLM_STAGES, Mode, active_stages, next_stage
from gem_graph.records import build_reject, text_sha256
from gem_graph.schemas import Document
from gem_graph.settings import Settings
from gem_graph.stages.common import StageContext, route_attempt


class SandboxProvider:
    """The sandbox for the running event loop: a given one, or one made per loop.

    A made sandbox belongs to its loop; when a new loop appears (another `asyncio.run`, a
    test with its own loop) the old one's processes are killed before a new one is made.
    """

    def __init__(self, settings: Settings, given: Any | None) -> None:
        self._settings = settings
        self._given = given
        self._made: tuple[asyncio.AbstractEventLoop, Any] | None = None

    def __call__(self) -> Any:
        if self._given is not None:
            return self._given
        from gem_graph.sandbox import Sandbox

        loop = asyncio.get_running_loop()
        if self._made is None or self._made[0] is not loop:
            if self._made is not None:
                self._made[1].abandon()
            self._made = (loop, Sandbox(self._settings.sandbox))
        return self._made[1]


def validate_llm(llm: Any) -> BaseChatModel:
    """Fail at build time, with a clear message, when `llm` is not a chat model."""
    if not isinstance(llm, BaseChatModel):
        raise TypeError(
            "llm must be a langchain BaseChatModel (e.g. gem_graph.llm.make_chat_model() or "
            f"ChatOpenAI(...)), got {type(llm).__name__}"
        )
    return llm


async def intake_node(state: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Validate the document at the boundary; bad input becomes a reject, not an exception."""
    raw = state.get("document")
    try:
        doc = Document.model_validate(raw)
    except ValidationError as exc:
        doc_id = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else "?"
        first = exc.errors()[0]
        reason = f"invalid document: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        return {
            "document": {"id": doc_id, "text": ""},
            "stage": "intake",
            "reject_reason": {"code": "invalid_input", "reason": reason},
        }
    document = {**doc.model_dump(), "text_sha256": text_sha256(doc.text)}
    if not doc.text.strip():
        return {
            "document": document,
            "stage": "intake",
            "reject_reason": {"code": "invalid_input", "reason": "the text is empty"},
        }
    limit = settings.pipeline.max_text_chars
    if len(doc.text) > limit:
        return {
            "document": document,
            "stage": "intake",
            "reject_reason": {
                "code": "invalid_input",
                "reason": f"the text has {len(doc.text)} characters, over "
                f"the limit of {limit}; split it into segments first",
            },
        }
    return {"document": document, "stage": "intake"}


async def route_intake(state: dict[str, Any], *, ok: str) -> str:
    """A document refused at intake goes straight to reject; others on to `ok`."""
    return "reject" if state.get("reject_reason") else ok


def on_loop(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A step taking the state, as a coroutine function, so LangGraph runs it on the loop.

    LangGraph hands plain functions to a small thread pool. Checks, routes and record
    building are short and CPU-bound: under the GIL a thread gains nothing, and at high
    concurrency the steps would queue for the pool's few threads.
    """
    if inspect.iscoroutinefunction(fn):
        return fn

    async def run(state: dict[str, Any]) -> Any:
        return fn(state)

    named = fn.func if isinstance(fn, functools.partial) else fn
    run.__name__ = run.__qualname__ = getattr(named, "__name__", "step")
    return run


def failure_handler(
    kind: str,
) -> Callable[[dict[str, Any], NodeError], Awaitable[Command[str]]]:
    """Turn an error that survived the retry policy into a reject record."""

    async def handle(state: dict[str, Any], error: NodeError) -> Command[str]:
        exc = error.error
        stage = error.node if error.node in LLM_STAGES else state.get("stage", error.node)
        if kind == "transport":
            retry = "after retries" if is_retryable(exc) else "not retryable"
            reason = f"model call failed ({retry}): {type(exc).__name__}: {exc}"
            code = "transport"
        elif getattr(exc, "infrastructure", False):  # SandboxInfrastructureError, duck-typed
            # so that building a graph does not import the sandbox
            reason = f"the sandbox failed (not the tool code): {exc}"
            code = "infrastructure"
        else:
            reason = f"{error.node} failed: {type(exc).__name__}: {exc}"
            code = "sandbox_violation" if "Sandbox" in type(exc).__name__ else "internal_error"
        return Command(
            update={
                "stage": stage,
                "reject_reason": {
                    "code": code,
                    "reason": reason[:2000],
                    "problems": [problem(code, reason[:2000], error.node)],
                },
            },
            goto="reject",
        )

    return handle


def transport_retry_policy(settings: Settings) -> RetryPolicy:
    """Retry only retryable transport errors, with exponential back-off; never bad answers."""
    return RetryPolicy(
        max_attempts=settings.model.max_transport_retries + 1,
        initial_interval=settings.model.retry_initial_s,
        max_interval=settings.model.retry_max_s,
        retry_on=is_retryable,
    )


def stage_context(*, llm: Any, settings: Settings | None, sandbox: Any | None) -> StageContext:
    """Validate a graph factory's arguments eagerly and bind them for the nodes."""
    llm = validate_llm(llm)
    settings = settings or Settings()
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be gem_graph.Settings, got {type(settings).__name__}")
    execute = settings.pipeline.execute
    if execute and settings.sandbox.tier == "none" and not settings.sandbox.allow_unsafe_none:
        raise ValueError(
            "sandbox tier 'none' runs untrusted tool code without confinement; "
            "set sandbox.allow_unsafe_none=True to accept that explicitly"
        )
    return StageContext(
        llm=StructuredLLM(
            llm,
            method=settings.model.structured_method,
            server=settings.model.server,
            timeout=settings.model.request_timeout,
        ),
        settings=settings,
        model_name=str(
            getattr(llm, "model_name", None) or getattr(llm, "model", None) or settings.model.name
        ),
        sandbox=SandboxProvider(settings, sandbox) if execute else None,
    )


def add_stage_loops(
    graph: StateGraph[Any, Any, Any, Any],
    ctx: StageContext,
    *,
    mode: Mode,
    nodes: Mapping[str, Callable[..., Any]],
    checks: Mapping[str, Callable[..., Any]],
) -> str:
    """Add the LLM stages of `mode` the settings turn on, their checks and validator loops.

    Which stages run, in what order, which check follows each and where a passed answer
    goes all come from the stage registry; `nodes` and `checks` give the functions (taking
    `state, ctx`) by node name. A stage without a check routes on its own answer; a check
    shared by several stages (`verify`) routes back to whichever ran. Returns the first
    stage, where intake sends a document.
    """
    settings = ctx.settings
    retry = transport_retry_policy(settings)
    on_transport_failure = failure_handler("transport")
    on_check_failure = failure_handler("internal")

    def bind(fn: Callable[..., Any]) -> Callable[..., Any]:
        return on_loop(functools.partial(fn, ctx=ctx))

    stages = active_stages(settings.pipeline, mode=mode)
    loops: dict[str, dict[str, str]] = {}  # routing node → {stage it judges: next on a pass}
    for name in stages:
        check = BY_NAME[name].check
        graph.add_node(
            name, bind(nodes[name]), retry_policy=retry, error_handler=on_transport_failure
        )
        if check is not None:
            graph.add_edge(name, check)
        loops.setdefault(check or name, {})[name] = next_stage(name, settings.pipeline, mode=mode)
    for node, ok in loops.items():
        if node not in ok:
            graph.add_node(node, bind(checks[node]), error_handler=on_check_failure)
        caps = {stage: ctx.cap(stage) for stage in ok}
        route = on_loop(functools.partial(route_attempt, ok=ok, caps=caps))
        graph.add_conditional_edges(node, route, sorted({*ok, *ok.values(), "reject"}))
    return stages[0]


def add_document_frame(
    graph: StateGraph[Any, Any, Any, Any],
    *,
    settings: Settings,
    first: str,
    emit: Any,
) -> None:
    """What every document graph has around its stages: intake, emit and reject.

    Intake validates the document and sends it to `first` (or to reject); `emit` turns a
    finished document into its outputs; reject writes the reject record.
    """

    async def reject(state: dict[str, Any]) -> dict[str, Any]:
        return {"rejects": [build_reject(state)]}

    graph.add_node("intake", functools.partial(intake_node, settings=settings))
    graph.add_node("emit", emit)
    graph.add_node("reject", reject)
    graph.add_edge(START, "intake")
    graph.add_conditional_edges(
        "intake", functools.partial(route_intake, ok=first), [first, "reject"]
    )
    graph.add_edge("emit", END)
    graph.add_edge("reject", END)
