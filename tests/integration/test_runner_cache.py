"""The SQLite LLM response cache: LangChain's cache path, its key, and a cached re-run."""

from __future__ import annotations

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration
from test_runner_helpers import document, fast_settings, respond, stage_requests, write_jsonl

from gem_graph.llm import make_chat_model
from gem_graph.run.cache import SQLiteLLMCache, normalize_llm_string
from gem_graph.run.corpus import read_corpus
from gem_graph.run.runner import RunOptions, run_corpus
from gem_graph.run.store import RunStore
from gem_graph.testing.openai_server import LoopbackOpenAIServer


async def test_a_cached_rerun_into_a_new_folder_makes_no_model_calls(tmp_path):
    corpus = write_jsonl(
        tmp_path / "c.jsonl", [document(i) for i in range(5)] + [document(5, news=True)]
    )
    cache = tmp_path / "cache.sqlite"
    outcomes = []
    for name in ("first", "second"):
        # A new server each time: a different port must not change the cache key.
        with LoopbackOpenAIServer(respond) as server:
            settings = fast_settings(base_url=server.base_url).updated(run={"cache": cache})
            options = RunOptions(run_dir=tmp_path / name, progress=False)
            result = await run_corpus(
                read_corpus(corpus),
                llm=make_chat_model(settings.model),
                settings=settings,
                options=options,
            )
            outcomes.append((result, len(stage_requests(server))))
    (first, first_calls), (second, second_calls) = outcomes
    assert first_calls == 16 and first.cache_hits == 0
    assert second_calls == 0 and second.cache_hits == 16
    assert (second.kept, second.rejected) == (first.kept, first.rejected) == (5, 1)
    with RunStore(tmp_path / "first") as a, RunStore(tmp_path / "second") as b:
        first_records = sorted(r["id"] for r in a.iter_records())
        assert sorted(r["id"] for r in b.iter_records()) == first_records
        # Usage still reports what the answers cost when they were made.
        assert b.summary()["usage"]["total"]["input_tokens"] == 1600


def _generation(text: str) -> list[ChatGeneration]:
    return [ChatGeneration(message=AIMessage(content=text))]


LLM = (
    '{"id": ["langchain", "chat_models", "openai", "ChatOpenAI"], "kwargs": {"model_name": "m", '
    '"temperature": 0.7, "openai_api_base": "http://127.0.0.1:1/v1", "request_timeout": 5}, '
    '"lc": 1}---[(\'response_format\', {"name": "FilterOutput"}), (\'stop\', None)]'
)


def test_the_key_covers_prompt_versions_model_sampling_and_input_but_not_transport(tmp_path):
    cache = SQLiteLLMCache(tmp_path / "c.sqlite", namespace="filter=filter@1")
    cache.update("prompt text", LLM, _generation("answer"))
    assert cache.lookup("prompt text", LLM)[0].message.content == "answer"
    moved = LLM.replace("127.0.0.1:1", "10.0.0.9:8000").replace('"request_timeout": 5', '"x": 1')
    assert normalize_llm_string(moved) != normalize_llm_string(LLM)  # "x" is not transport
    same_model_elsewhere = LLM.replace("127.0.0.1:1", "10.0.0.9:8000")
    assert cache.lookup("prompt text", same_model_elsewhere) is not None
    assert cache.lookup("other prompt text", LLM) is None
    assert (
        cache.lookup("prompt text", LLM.replace('"temperature": 0.7', '"temperature": 0.1')) is None
    )
    assert (
        cache.lookup("prompt text", LLM.replace('"model_name": "m"', '"model_name": "m2"')) is None
    )
    assert cache.lookup("prompt text", LLM.replace("FilterOutput", "JudgeOutput")) is None
    bumped = SQLiteLLMCache(tmp_path / "c.sqlite", namespace="filter=filter@2")
    assert bumped.lookup("prompt text", LLM) is None
    assert len(cache) == 1
