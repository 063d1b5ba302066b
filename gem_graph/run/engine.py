"""Which engine carries a run out, and how an engine that runs elsewhere gets its model.

- `local`: the graph runs in the calling process (`gem_graph.run.runner`).
- `ray`: the graph runs in Ray actors, on a cluster or on a Ray started for the run
  (`gem_graph.run.ray_engine`); `--workers N` is a local Ray with N actors.

Either way the calling process reads the corpus and owns the run store.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Literal

from langchain_core.language_models import BaseChatModel

from gem_graph.run.options import RunError
from gem_graph.settings import Settings

Engine = Literal["local", "ray"]

ModelFactory = Callable[[Settings], BaseChatModel]
"""Builds the chat model where the graph runs (each Ray actor); must be picklable, e.g. a
module-level function."""

RAY_INSTALL_HINT = "pip install 'gem-graph[ray]'"


def settings_model(settings: Settings) -> BaseChatModel:
    """The default model factory: `make_chat_model(settings.model)`."""
    from gem_graph.llm import make_chat_model

    return make_chat_model(settings.model)


def engine_of(settings: Settings) -> Engine:
    """The engine a run's settings ask for: `run.engine`, or `ray` when `run.workers > 1`."""
    return "ray" if settings.run.workers > 1 else settings.run.engine


def require_ray() -> None:
    """Raise `RunError` with the install hint when Ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise RunError(
            f"the Ray engine (--engine ray, --workers N) needs Ray, which is not installed: "
            f"{RAY_INSTALL_HINT}"
        )
