"""The offline demo: the full pipeline on a bundled corpus, with SCRIPTED model replies.

Everything but the model is real: the graph, the checks, the sandbox that executes the
synthesized tool code, the verifier, the run store. The model's answers are hand-written
JSON files in the demo folder (`examples/demo/responses/<doc_id>.json` in a checkout,
`gem_graph/_data/demo/` in a wheel), one list of replies per stage, indexed by attempt.
Some first attempts are deliberately flawed (an invalid tool schema, tool code that
crashes, a dialogue whose tool outputs differ from what the code returns, an argument the
assistant guessed) so the validator loops can be seen repairing them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from gem_graph.pipeline import mode_stages
from gem_graph.resources import data_dir
from gem_graph.settings import (
    ModelSettings,
    PipelineSettings,
    RunSettings,
    SandboxSettings,
    Settings,
)
from gem_graph.testing.scripted import Reply, ScriptedChatModel, table_responder

CORPUS_FILE = "corpus.jsonl"
RESPONSES_DIR = "responses"
DEMO_MODEL_NAME = "scripted-demo"
STAGES = tuple(mode_stages("pipeline"))
"""The stages the demo scripts: the full pipeline's (the registry's pipeline mode)."""

SCRIPTED_NOTICE = (
    "This demo uses SCRIPTED model responses: hand-written replies shipped with gem-graph; "
    "no model was called. Everything else is real: the tool code runs in the sandbox and "
    "every kept tool output is what that code returned."
)
REAL_MODEL_HINT = (
    "To run on your own texts with a real model, point gem-graph at any OpenAI-compatible "
    "endpoint:\n"
    "  export OPENAI_BASE_URL=http://localhost:8000/v1   # or pass --base-url\n"
    "  export OPENAI_API_KEY=...                         # if the server needs one\n"
    "  gem-graph run corpus.jsonl -o runs/mine --model <model-name>"
)
SANDBOX_HINT = (
    "The sandbox needs Linux with Landlock and seccomp (see `python -c "
    '"from gem_graph.sandbox import probe; print(probe())"`). The demo\'s tool code '
    "is hand-written and trusted, so `gem-graph demo --tier none` runs it with "
    "rlimits only."
)


def default_demo_dir() -> Path:
    """The bundled demo folder (corpus and scripted responses)."""
    return data_dir("demo")


def load_demo_responses(demo_dir: Path | None = None) -> dict[tuple[str, str], list[Reply]]:
    """`{(stage, doc_id): [reply for attempt 1, attempt 2, ...]}` from the responses folder."""
    folder = (demo_dir or default_demo_dir()) / RESPONSES_DIR
    table: dict[tuple[str, str], list[Reply]] = {}
    for path in sorted(folder.glob("*.json")):
        replies = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(replies, dict):
            raise ValueError(f"{path}: expected an object {{stage: [reply, ...]}}")
        for stage, answers in replies.items():
            if stage not in STAGES:
                raise ValueError(f"{path}: unknown stage {stage!r}; expected one of {STAGES}")
            if not isinstance(answers, list) or not answers:
                raise ValueError(f"{path}: {stage!r} must be a non-empty list of replies")
            table[(stage, path.stem)] = list(answers)
    return table


def demo_documents(demo_dir: Path | None = None) -> list[dict[str, Any]]:
    """The bundled corpus as `{"id", "text", "meta"}` documents, for examples and notebooks."""
    path = (demo_dir or default_demo_dir()) / CORPUS_FILE
    documents = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            meta = {k: v for k, v in row.items() if k not in {"id", "text"}}
            documents.append({"id": row["id"], "text": row["text"], "meta": meta})
    return documents


def load_demo_model(demo_dir: Path | None = None) -> ScriptedChatModel:
    """A scripted chat model answering every stage from the demo's response files."""
    table: dict[tuple[str, str], Sequence[Reply] | Reply] = dict(load_demo_responses(demo_dir))
    return ScriptedChatModel(responder=table_responder(table), model_name=DEMO_MODEL_NAME)


def demo_settings(tier: str | None = None) -> Settings:
    """Full pipeline with execution on; transport retries are irrelevant offline."""
    sandbox = SandboxSettings(tier=tier) if tier else SandboxSettings()  # type: ignore[arg-type]
    if sandbox.tier == "none":
        sandbox = sandbox.model_copy(update={"allow_unsafe_none": True})
    return Settings(
        model=ModelSettings(name=DEMO_MODEL_NAME, base_url=None, max_transport_retries=0),
        sandbox=sandbox,
        pipeline=PipelineSettings(execute=True, refine=True, judge=True),
        run=RunSettings(concurrency=4, cache=False),
    )


async def run_demo(
    out_dir: Path,
    *,
    demo_dir: Path | None = None,
    settings: Settings | None = None,
    progress: bool = False,
    llm: BaseChatModel | None = None,
) -> Any:
    """Run the bundled corpus through the full pipeline into the run folder `out_dir`.

    Returns the runner's `RunSummary` (its `.summary` is the store's summary dict).
    Re-running into the same folder resumes: finished documents are skipped. `llm` replaces
    the scripted demo model (tests pass their own instance to inspect its calls).
    """
    from gem_graph.run.corpus import read_corpus
    from gem_graph.run.runner import RunOptions, run_corpus

    folder = demo_dir or default_demo_dir()
    settings = settings or demo_settings()
    options = RunOptions(
        run_dir=Path(out_dir),
        progress=progress,
        preflight=False,
        command=["gem-graph", "demo"],
    )
    return await run_corpus(
        read_corpus(folder / CORPUS_FILE),
        llm=llm or load_demo_model(folder),
        settings=settings,
        options=options,
    )
