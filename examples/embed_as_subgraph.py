"""Embed the GEM document graph as one node of your own LangGraph graph.

The host graph picks documents, hands each to the gem graph (a compiled subgraph with
narrow input/output schemas), then summarises what came back. It runs offline: the model
is the bundled demo's SCRIPTED model (hand-written replies, no model is called); the
graph, checks and sandbox are real. Swap `load_demo_model()` for
`gem_graph.make_chat_model()` to use a real endpoint (OPENAI_BASE_URL, OPENAI_API_KEY).

    python examples/embed_as_subgraph.py
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from gem_graph import build_gem_graph
from gem_graph.demo import demo_documents, load_demo_model


class HostState(TypedDict, total=False):
    document: dict[str, Any]
    records: Annotated[list[dict[str, Any]], operator.add]
    rejects: Annotated[list[dict[str, Any]], operator.add]
    usage: Annotated[list[dict[str, Any]], operator.add]
    environments: Annotated[list[dict[str, Any]], operator.add]
    summary: str


def summarize(state: HostState) -> dict[str, Any]:
    kept = [r["id"] for r in state.get("records", [])]
    rejected = [f"{r['doc_id']} at {r['stage']} ({r['code']})" for r in state.get("rejects", [])]
    calls = sum(u["calls"] for u in state.get("usage", []))
    return {"summary": f"kept {kept}, rejected {rejected}, {calls} model calls"}


def build_host_graph() -> Any:
    gem = build_gem_graph(llm=load_demo_model())
    host = StateGraph(HostState)
    host.add_node("gem", gem)  # the compiled gem graph is an ordinary node here
    host.add_node("summarize", summarize)
    host.add_edge(START, "gem")
    host.add_edge("gem", "summarize")
    host.add_edge("summarize", END)
    return host.compile(name="host_with_gem")


async def main() -> None:
    host = build_host_graph()
    document = next(d for d in demo_documents() if d["id"] == "shop-returns")
    result = await host.ainvoke({"document": document})
    print("Scripted model replies (no model was called).")
    print(result["summary"])


if __name__ == "__main__":
    asyncio.run(main())
