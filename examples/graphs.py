"""Example graphs for `langgraph dev` / LangGraph Studio (see langgraph.json).

They are compiled without a checkpointer (the server brings its own). The model comes
from the environment (OPENAI_BASE_URL, OPENAI_API_KEY, GEM_MODEL); set GEM_SCRIPTED=1 to
use the bundled demo's scripted replies instead (offline, no model is called).
"""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel

from gem_graph import build_corpus_graph, build_gem_graph, make_chat_model


def _model() -> BaseChatModel:
    if os.environ.get("GEM_SCRIPTED") == "1":
        from gem_graph.demo import load_demo_model

        return load_demo_model()
    return make_chat_model()


document_graph = build_gem_graph(llm=_model(), name="gem_document")
corpus_graph = build_corpus_graph(llm=_model(), name="gem_corpus")
