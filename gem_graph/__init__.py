"""gem-graph: verified, executed multi-turn tool-use trajectories from ordinary text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Settings",
    "asynthesize",
    "build_corpus_graph",
    "build_gem_graph",
    "build_gem_state_graph",
    "build_synthesizer_graph",
    "make_chat_model",
    "synthesize",
]

if TYPE_CHECKING:
    from gem_graph.graph import (
        asynthesize,
        build_corpus_graph,
        build_gem_graph,
        build_gem_state_graph,
        synthesize,
    )
    from gem_graph.llm import make_chat_model
    from gem_graph.settings import Settings
    from gem_graph.synthesizer import build_synthesizer_graph


def __getattr__(name: str) -> Any:
    """Import the heavy modules (LangGraph, the sandbox) only when they are used."""
    if name in {
        "asynthesize",
        "build_corpus_graph",
        "build_gem_graph",
        "build_gem_state_graph",
        "synthesize",
    }:
        from gem_graph import graph

        return getattr(graph, name)
    if name == "build_synthesizer_graph":
        from gem_graph.synthesizer import build_synthesizer_graph

        return build_synthesizer_graph
    if name == "make_chat_model":
        from gem_graph.llm import make_chat_model

        return make_chat_model
    if name == "Settings":
        from gem_graph.settings import Settings

        return Settings
    raise AttributeError(f"module 'gem_graph' has no attribute {name!r}")
