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

Each `⇄` is a validator loop with an attempts cap from settings; the stages, their checks
and their order come from the stage registry (`gem_graph.pipeline`). Transport errors are
retried by the node's retry policy (retryable ones only) and never count as attempts;
what still fails ends as a reject record, never as an exception out of the graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from gem_graph.environment import environment_ref
from gem_graph.eval.gold import gold_reject
from gem_graph.nodes import add_document_frame, add_stage_loops, stage_context
from gem_graph.records import build_record
from gem_graph.settings import Settings
from gem_graph.stages.extract import check_blueprint_node, extract_node
from gem_graph.stages.filter import filter_node
from gem_graph.stages.ground import ground_node
from gem_graph.stages.implement import (
    check_environment_node,
    environment_from_state,
    implement_node,
)
from gem_graph.stages.judge import judge_node
from gem_graph.stages.refine import refine_node
from gem_graph.stages.verify import verify_node
from gem_graph.state import CorpusInput, CorpusState, GemInput, GemOutput, GemState


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
    ctx = stage_context(llm=llm, settings=settings, sandbox=sandbox)
    settings = ctx.settings

    async def emit(state: dict[str, Any]) -> dict[str, Any]:
        env = state.get("environment")
        record = build_record(
            state,
            environment_ref=environment_ref(environment_from_state(env)) if env else None,
            model_name=ctx.model_name,
            prompt_versions=ctx.prompt_versions,
        )
        if env and ctx.sandbox is not None:  # a task its own gold cannot pass is not kept
            failed = await gold_reject(state, record, environment_from_state(env), ctx.sandbox())
            if failed is not None:
                return {"rejects": [failed]}
        return {"records": [record], "environments": [env] if env else []}

    graph = StateGraph(GemState, input_schema=GemInput, output_schema=GemOutput)
    first = add_stage_loops(
        graph,
        ctx,
        mode="pipeline",
        nodes={
            "filter": filter_node,
            "extract": extract_node,
            "implement": implement_node,
            "ground": ground_node,
            "refine": refine_node,
            "judge": judge_node,
        },
        checks={
            "check_blueprint": check_blueprint_node,
            "check_environment": check_environment_node,
            "verify": verify_node,
        },
    )
    add_document_frame(graph, settings=settings, first=first, emit=emit)
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
    concurrency: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Run the document graph over texts (strings, or `{"id", "text", "meta"}` dicts).

    At most `concurrency` documents are in flight (default: `settings.run.concurrency`).
    An OpenAI-compatible `llm`'s server is probed first, once per endpoint and model in
    this process (`gem_graph.probe`; `ProbeFailed` when it is unusable).
    Returns `{"records", "rejects", "usage", "environments"}`.
    """
    from gem_graph.probe import probed_settings

    settings = await probed_settings(llm, settings or Settings())
    if concurrency is None:
        concurrency = settings.run.concurrency
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
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
