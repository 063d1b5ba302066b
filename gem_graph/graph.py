"""Graph factories: the document graph (one text in, records or rejects out) and a corpus graph.

    START → intake → filter ─irrelevant→ reject
                       │
                    extract ⇄ check_blueprint
                       │
                   implement ⇄ check_environment      (execution on)
                       │
                     ground ⇄ verify
                       │
                     refine ⇄ verify                  (refinement on)
                       │
                     judge → emit | reject            (judge on)

Each `⇄` is a validator loop with an attempts cap from settings. Transport errors are
retried by the node's retry policy (retryable ones only) and never count as attempts;
what still fails ends as a reject record, never as an exception out of the graph.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.errors import NodeError
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, RetryPolicy, Send
from pydantic import ValidationError

from gem_graph.checks.problems import problem
from gem_graph.environment import environment_ref
from gem_graph.llm import StructuredLLM, is_retryable
from gem_graph.records import build_record, build_reject, text_sha256
from gem_graph.schemas import Document
from gem_graph.settings import Settings
from gem_graph.stages.common import StageContext, route_after_check
from gem_graph.stages.extract import check_blueprint_node, extract_node
from gem_graph.stages.filter import filter_node, route_filter
from gem_graph.stages.ground import ground_node
from gem_graph.stages.implement import (
    check_environment_node,
    environment_from_state,
    implement_node,
)
from gem_graph.stages.judge import judge_node, route_judge
from gem_graph.stages.refine import refine_node
from gem_graph.stages.verify import route_verify, verify_node
from gem_graph.state import CorpusInput, CorpusState, GemInput, GemOutput, GemState

LLM_STAGES = ("filter", "extract", "implement", "ground", "refine", "judge")


class _SandboxProvider:
    """The sandbox for the running event loop: a given one, or one made per loop."""

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
            self._made = (loop, Sandbox(self._settings.sandbox))
        return self._made[1]


def _validate_llm(llm: Any) -> BaseChatModel:
    if not isinstance(llm, BaseChatModel):
        raise TypeError(
            "llm must be a langchain BaseChatModel (e.g. gem_graph.llm.make_chat_model() or "
            f"ChatOpenAI(...)), got {type(llm).__name__}"
        )
    return llm


def _intake(state: dict[str, Any], settings: Settings) -> dict[str, Any]:
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


def _failure_handler(kind: str) -> Callable[[dict[str, Any], NodeError], Command[str]]:
    """Turn an error that survived the retry policy into a reject record."""

    def handle(state: dict[str, Any], error: NodeError) -> Command[str]:
        exc = error.error
        stage = error.node if error.node in LLM_STAGES else state.get("stage", error.node)
        if kind == "transport":
            retry = "after retries" if is_retryable(exc) else "not retryable"
            reason = f"model call failed ({retry}): {type(exc).__name__}: {exc}"
            code = "transport"
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


def build_gem_state_graph(
    *,
    llm: BaseChatModel,
    settings: Settings | None = None,
    sandbox: Any | None = None,
) -> StateGraph[GemState, None, GemInput, GemOutput]:
    """The uncompiled document graph, for callers who compile it with their own options.

    `llm` answers every stage. `sandbox` (a `gem_graph.sandbox.Sandbox`) is optional: by
    default one is made per event loop when execution is on.
    """
    llm = _validate_llm(llm)
    settings = settings or Settings()
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be gem_graph.Settings, got {type(settings).__name__}")
    execute = settings.pipeline.execute
    if execute and settings.sandbox.tier == "none" and not settings.sandbox.allow_unsafe_none:
        raise ValueError(
            "sandbox tier 'none' runs untrusted tool code without confinement; "
            "set sandbox.allow_unsafe_none=True to accept that explicitly"
        )
    ctx = StageContext(
        llm=StructuredLLM(llm, method=settings.model.structured_method),
        settings=settings,
        model_name=str(
            getattr(llm, "model_name", None) or getattr(llm, "model", None) or settings.model.name
        ),
        sandbox=_SandboxProvider(settings, sandbox) if execute else None,
    )

    def bind(fn: Callable[..., Any]) -> Callable[..., Any]:
        return functools.partial(fn, ctx=ctx)

    def emit(state: dict[str, Any]) -> dict[str, Any]:
        env = state.get("environment")
        record = build_record(
            state,
            environment_ref=environment_ref(environment_from_state(env)) if env else None,
            model_name=ctx.model_name,
            prompt_versions=ctx.prompt_versions,
        )
        return {"records": [record], "environments": [env] if env else []}

    def reject(state: dict[str, Any]) -> dict[str, Any]:
        return {"rejects": [build_reject(state)]}

    retry = RetryPolicy(
        max_attempts=settings.model.max_transport_retries + 1,
        initial_interval=settings.model.retry_initial_s,
        max_interval=settings.model.retry_max_s,
        retry_on=is_retryable,
    )
    graph = StateGraph(GemState, input_schema=GemInput, output_schema=GemOutput)
    on_transport_failure = _failure_handler("transport")
    on_check_failure = _failure_handler("internal")

    def add_llm_node(name: str, fn: Callable[..., Any]) -> None:
        graph.add_node(name, bind(fn), retry_policy=retry, error_handler=on_transport_failure)

    def add_check_node(name: str, fn: Callable[..., Any]) -> None:
        graph.add_node(name, bind(fn), error_handler=on_check_failure)

    graph.add_node("intake", functools.partial(_intake, settings=settings))
    add_llm_node("filter", filter_node)
    add_llm_node("extract", extract_node)
    add_check_node("check_blueprint", check_blueprint_node)
    add_llm_node("ground", ground_node)
    add_check_node("verify", verify_node)
    graph.add_node("emit", emit)
    graph.add_node("reject", reject)

    graph.add_edge(START, "intake")
    graph.add_conditional_edges(
        "intake", lambda s: "reject" if s.get("reject_reason") else "filter", ["filter", "reject"]
    )
    graph.add_conditional_edges("filter", bind(route_filter), ["filter", "extract", "reject"])
    graph.add_edge("extract", "check_blueprint")
    after_blueprint = "implement" if execute else "ground"
    graph.add_conditional_edges(
        "check_blueprint",
        functools.partial(
            route_after_check, stage="extract", cap=ctx.cap("extract"), ok=after_blueprint
        ),
        ["extract", after_blueprint, "reject"],
    )
    if execute:
        add_llm_node("implement", implement_node)
        add_check_node("check_environment", check_environment_node)
        graph.add_edge("implement", "check_environment")
        graph.add_conditional_edges(
            "check_environment",
            functools.partial(
                route_after_check, stage="implement", cap=ctx.cap("implement"), ok="ground"
            ),
            ["implement", "ground", "reject"],
        )
    graph.add_edge("ground", "verify")
    verify_targets = ["ground", "reject", "emit"]
    if settings.pipeline.refine:
        add_llm_node("refine", refine_node)
        graph.add_edge("refine", "verify")
        verify_targets.append("refine")
    if settings.pipeline.judge:
        add_llm_node("judge", judge_node)
        graph.add_conditional_edges("judge", bind(route_judge), ["judge", "emit", "reject"])
        verify_targets.append("judge")
    graph.add_conditional_edges("verify", bind(route_verify), verify_targets)
    graph.add_edge("emit", END)
    graph.add_edge("reject", END)
    return graph


def build_gem_graph(
    *,
    llm: BaseChatModel,
    settings: Settings | None = None,
    sandbox: Any | None = None,
    name: str = "gem_graph",
) -> CompiledStateGraph[GemState, None, GemInput, GemOutput]:
    """The compiled document graph: `{"document": {...}}` in, `{"records", "rejects", "usage",
    "environments"}` out. Compiled without a checkpointer, so it embeds as a subgraph; pass yours to
    `build_gem_state_graph(...).compile(checkpointer=...)` if you need one.
    """
    return build_gem_state_graph(llm=llm, settings=settings, sandbox=sandbox).compile(name=name)


def build_corpus_graph(
    *,
    llm: BaseChatModel,
    settings: Settings | None = None,
    sandbox: Any | None = None,
    name: str = "gem_corpus",
) -> CompiledStateGraph[CorpusState, None, CorpusInput, GemOutput]:
    """Fan a list of documents out to the document graph with `Send`; results fan back in.

    For big corpora use the runner instead, which streams documents through the document
    graph rather than putting every document in one superstep.
    """
    document_graph = build_gem_graph(llm=llm, settings=settings, sandbox=sandbox)

    def fan_out(state: dict[str, Any]) -> list[Send]:
        return [Send("document", {"document": doc}) for doc in state["documents"]]

    graph = StateGraph(CorpusState, input_schema=CorpusInput, output_schema=GemOutput)
    graph.add_node("document", document_graph)
    graph.add_conditional_edges(START, fan_out, ["document"])
    graph.add_edge("document", END)
    return graph.compile(name=name)


def _documents(texts: Iterable[str | dict[str, Any]]) -> list[dict[str, Any]]:
    docs = []
    for index, item in enumerate(texts):
        if isinstance(item, str):
            docs.append({"id": f"doc-{index}", "text": item})
        else:
            docs.append(dict(item))
    return docs


async def asynthesize(
    texts: Iterable[str | dict[str, Any]],
    *,
    llm: BaseChatModel,
    settings: Settings | None = None,
    concurrency: int = 8,
) -> dict[str, list[dict[str, Any]]]:
    """Run the document graph over texts (strings, or `{"id", "text", "meta"}` dicts).

    At most `concurrency` documents are in flight. Returns `{"records", "rejects", "usage",
    "environments"}`.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    settings = settings or Settings()
    docs = _documents(texts)
    sandbox = None
    if settings.pipeline.execute:
        from gem_graph.sandbox import Sandbox

        sandbox = Sandbox(settings.sandbox)
    graph = build_gem_graph(llm=llm, settings=settings, sandbox=sandbox)
    try:
        outputs: Sequence[dict[str, Any]] = await graph.abatch(
            [{"document": d} for d in docs], config={"max_concurrency": concurrency}
        )
    finally:
        if sandbox is not None:
            await sandbox.aclose()
    merged: dict[str, list[dict[str, Any]]] = {
        "records": [],
        "rejects": [],
        "usage": [],
        "environments": [],
    }
    for out in outputs:
        for key in merged:
            merged[key].extend(out.get(key, []))
    return merged


def synthesize(
    texts: Iterable[str | dict[str, Any]],
    *,
    llm: BaseChatModel,
    settings: Settings | None = None,
    concurrency: int = 8,
) -> dict[str, list[dict[str, Any]]]:
    """Blocking form of `asynthesize`, for scripts and notebooks without a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(asynthesize(texts, llm=llm, settings=settings, concurrency=concurrency))
    raise RuntimeError("synthesize() cannot run inside an event loop; await asynthesize()")
