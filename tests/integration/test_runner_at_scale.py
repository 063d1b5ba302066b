"""Corpus runs at scale with execution on: 300 documents in flight, and fork servers killed.

The model is scripted (the retail reference environment as the implement answer, its first
gold dialogue as the ground answer), so every document that passes the filter runs the
real graph and the real sandbox: the implement stage's smoke test and the verifier's two
replays each open an episode. Refinement and the judge are off to keep the runs short;
execution stays on.

What a document must end as depends only on its text: procedures are kept, news is
irrelevant, and a procedure whose scripted dialogue misquotes a tool output is rejected
at `ground`. Load and a dying fork server must never change that: the sandbox restarts
the fork server and replays again, and a document that still cannot run ends `failed`
(code `infrastructure`), which a re-run of the same command finishes. Fork servers are
found as this process's children running `worker.py zygote`; "busy" ones have episodes.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from gem_graph.run.runner import RunOptions, RunSummary, run_corpus
from gem_graph.run.store import RunStore
from gem_graph.sandbox import probe
from gem_graph.sandbox.forkserver import Zygote
from gem_graph.settings import (
    ModelSettings,
    PipelineSettings,
    RunSettings,
    SandboxSettings,
    Settings,
)
from gem_graph.testing.reference_replies import (
    FILTER_OK,
    RETAIL_TEXT,
    dialogue_calls,
    extract_reply,
    gold_record,
    implement_reply,
    reference_environment,
    trajectory_reply,
)
from gem_graph.testing.scripted import Reply, ScriptedChatModel, ScriptKey

pytestmark = pytest.mark.skipif(
    probe()["tiers"].get("standard") is not True,
    reason=f"standard sandbox tier unavailable: {probe()['tiers'].get('standard')}",
)

NEWS_TEXT = "City news: the council approved the parks budget for next year after a long debate."
FILTER_NO = {**FILTER_OK, "relevant": False, "reason": "A news report, not a procedure."}
MACHINE_CODES = {"infrastructure", "transport", "sandbox_violation", "internal_error"}
"""Reject codes that speak of the machine or the pipeline, not of the document."""


GOLD = gold_record("retail", 0)
GROUND = trajectory_reply(GOLD)


def _replies() -> dict[str, Reply]:
    env = reference_environment("retail")
    return {
        "filter": FILTER_OK,
        "extract": extract_reply(env, GOLD, RETAIL_TEXT),
        "implement": implement_reply(env),
        "ground": GROUND,
    }


def _misquoting_ground_reply(reply: dict[str, Any]) -> dict[str, Any]:
    """The gold dialogue with a wrong order total in a tool output: the replay disagrees."""
    wrong = copy.deepcopy(reply)
    index = next(
        i
        for i, m in enumerate(wrong["messages"])
        if m["role"] == "tool" and '"total": 137.5' in (m["content"] or "")
    )
    wrong["messages"][index]["content"] = wrong["messages"][index]["content"].replace(
        '"total": 137.5', '"total": 99.0'
    )
    return wrong


REPLIES = _replies()
MISQUOTING_GROUND = _misquoting_ground_reply(GROUND)

# kind of document (the prefix of its id) → (status, stage, reject code) it must end with
EXPECTED = {
    "proc": ("kept", "emit", None),
    "news": ("rejected", "filter", "irrelevant"),
    "misquote": ("rejected", "ground", "output_mismatch"),
}


def respond(key: ScriptKey, _messages: list[BaseMessage]) -> Reply:
    """The same answer for every document of a kind, whatever the attempt."""
    kind = key.doc_id.split("-")[0]
    if key.stage == "filter":
        return FILTER_NO if kind == "news" else FILTER_OK
    if key.stage == "ground" and kind == "misquote":
        return MISQUOTING_GROUND
    return REPLIES[key.stage]


def corpus(kinds: Counter[str]) -> list[dict[str, Any]]:
    """Documents with distinct ids and texts, each kind spread evenly over the corpus."""
    spread = sorted(((i + 0.5) / n, kind) for kind, n in sorted(kinds.items()) for i in range(n))
    items = []
    for index, (_, kind) in enumerate(spread):
        text = NEWS_TEXT if kind == "news" else RETAIL_TEXT
        items.append({"id": f"{kind}-{index:04d}", "text": f"{text}\nEntry {index}.", "meta": {}})
    return items


def settings() -> Settings:
    """Execution on (standard tier, fork server), refinement and the judge off."""
    return Settings(
        model=ModelSettings(name="scripted-at-scale", base_url=None, max_transport_retries=0),
        sandbox=SandboxSettings(tier="standard"),
        pipeline=PipelineSettings(execute=True, refine=False, judge=False),
        run=RunSettings(cache=False),
    )


async def run(items: list[dict[str, Any]], run_dir: Path, concurrency: int) -> RunSummary:
    model = ScriptedChatModel(responder=respond, model_name="scripted-at-scale")
    options = RunOptions(run_dir=run_dir, progress=False)
    run_settings = settings().updated(run={"concurrency": concurrency})
    return await run_corpus(items, llm=model, settings=run_settings, options=options)


def stored_documents(run_dir: Path) -> dict[str, dict[str, Any]]:
    with RunStore(run_dir) as store:
        return {d["id"]: d for d in store.iter_documents()}


def expected(doc_id: str) -> tuple[str, str, str | None]:
    return EXPECTED[doc_id.split("-")[0]]


def assert_final(run_dir: Path, items: list[dict[str, Any]]) -> None:
    """Every document finished as its text says, once, with one record per kept document."""
    documents = stored_documents(run_dir)
    assert sorted(documents) == sorted(item["id"] for item in items)
    outcomes = {d: (row["status"], row["stage"], row["code"]) for d, row in documents.items()}
    wrong = {d: (o, row_reason(documents[d])) for d, o in outcomes.items() if o != expected(d)}
    assert not wrong, f"{len(wrong)} documents ended wrongly, e.g. {next(iter(wrong.items()))}"
    with RunStore(run_dir) as store:
        records = list(store.iter_records())
        rejects = list(store.iter_rejects(include_failed=True))
        assert store.integrity_check() == "ok"
    kept = sorted(d for d, o in outcomes.items() if o[0] == "kept")
    assert sorted(r["source"]["doc_id"] for r in records) == kept
    assert len({r["id"] for r in records}) == len(records)
    assert sorted(r["doc_id"] for r in rejects) == sorted(set(outcomes) - set(kept))
    assert not {r["code"] for r in rejects} & MACHINE_CODES
    for record in records:
        verification = record["verification"]
        assert verification["deterministic"] is True
        assert verification["isolation"]["tier"] == "standard"
        assert len(verification["calls"]) == len(dialogue_calls(GOLD))


def row_reason(row: dict[str, Any]) -> str:
    return str(row.get("reason") or "")[:300]


@pytest.mark.slow
async def test_three_hundred_documents_in_flight_with_execution_end_as_their_texts_say(
    tmp_path: Path,
) -> None:
    items = corpus(Counter(proc=288, misquote=6, news=6))
    started = time.monotonic()
    result = await run(items, tmp_path / "run", concurrency=300)
    seconds = time.monotonic() - started
    print(f"\n300 documents at concurrency 300 with execution on: {seconds:.1f} s")
    assert result.stopped_reason is None
    assert (result.processed, result.kept, result.rejected, result.failed) == (300, 288, 12, 0)
    assert_final(tmp_path / "run", items)


# ---- a fork server killed mid-run ----------------------------------------------------------


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _processes() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def fork_servers(skip: set[int], *, busy: bool) -> list[int]:
    """This process's fork servers not in `skip`; with `busy`, only those with at least one
    episode in flight."""
    me = os.getpid()
    pids = _processes()
    servers = []
    for pid in pids:
        if pid in skip:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"worker.py" in cmdline and b"zygote" in cmdline and _parent(pid) == me:
            servers.append(pid)
    if not busy:
        return servers
    return [server for server in servers if any(_parent(pid) == server for pid in pids)]


async def kill_fork_servers(
    killed: list[int], *, times: int | None, pause_s: float, busy: bool = True
) -> None:
    """SIGKILL fork servers (busy ones, or any as soon as it exists) until `killed` holds
    `times` pids (None: until cancelled), `pause_s` after each kill."""
    while times is None or len(killed) < times:
        found = await asyncio.to_thread(fork_servers, set(killed), busy=busy)
        for pid in found[:1]:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            await asyncio.sleep(pause_s)
        if not found:
            await asyncio.sleep(0.01 if busy else 0.001)


async def run_while(
    killing: Any, items: list[dict[str, Any]], run_dir: Path, concurrency: int
) -> RunSummary:
    """One run with the coroutine `killing` running beside it (cancelled when it ends)."""
    killer = asyncio.create_task(killing)
    try:
        return await run(items, run_dir, concurrency=concurrency)
    finally:
        killer.cancel()
        await asyncio.gather(killer, return_exceptions=True)


def failed_for_infrastructure_only(run_dir: Path) -> set[str]:
    """The failed documents, after checking that every stored document either ended as its
    text says or failed with code `infrastructure` (never rejected for the machine)."""
    failed = set()
    for doc_id, row in stored_documents(run_dir).items():
        outcome = (row["status"], row["stage"], row["code"])
        if row["status"] == "failed":
            assert row["code"] == "infrastructure", (doc_id, outcome, row_reason(row))
            failed.add(doc_id)
        else:
            assert outcome == expected(doc_id), (doc_id, outcome, row_reason(row))
    return failed


async def assert_a_rerun_finishes(
    items: list[dict[str, Any]], run_dir: Path, failed: set[str]
) -> None:
    """The same command again: only unfinished documents run, and all of them finish."""
    stored = stored_documents(run_dir)
    again = await run(items, run_dir, concurrency=20)
    assert (again.failed, again.stopped_reason) == (0, None)
    assert again.processed == len(items) - len(stored) + len(failed)
    assert again.skipped == len(stored) - len(failed)
    assert_final(run_dir, items)
    runs = {d: row["runs"] for d, row in stored_documents(run_dir).items()}
    assert {d for d, n in runs.items() if n == 2} == failed
    assert set(runs.values()) <= {1, 2}


async def test_a_fork_server_killed_twice_mid_run_loses_no_document(tmp_path: Path) -> None:
    items = corpus(Counter(proc=34, news=3, misquote=3))
    run_dir = tmp_path / "run"
    killed: list[int] = []
    first = await run_while(
        kill_fork_servers(killed, times=2, pause_s=1.5), items, run_dir, concurrency=20
    )
    assert killed, "no fork server was killed while documents were in flight"
    failed = failed_for_infrastructure_only(run_dir)
    assert first.failed == len(failed)
    print(
        f"\nkilled {len(killed)} fork servers; first run: {first.processed} processed, "
        f"{len(failed)} failed, stopped: {first.stopped_reason}"
    )
    await assert_a_rerun_finishes(items, run_dir, failed)


async def test_documents_fail_for_a_fork_server_that_keeps_dying_and_a_rerun_finishes_them(
    tmp_path: Path,
) -> None:
    """Every fork server is killed as soon as it has an episode: retries cannot help, so
    documents end `failed` (never `rejected`), and the next run, on a working sandbox,
    finishes every one of them."""
    items = corpus(Counter(proc=18, news=2))
    run_dir = tmp_path / "run"
    killed: list[int] = []
    first = await run_while(
        kill_fork_servers(killed, times=None, pause_s=0.0), items, run_dir, concurrency=10
    )
    failed = failed_for_infrastructure_only(run_dir)
    assert failed and first.failed == len(failed)
    if first.stopped_reason is not None:  # consecutive failures stop the run early
        assert "the sandbox failed" in first.stopped_reason
    print(
        f"\nkilled {len(killed)} fork servers; first run: {first.processed} processed, "
        f"{len(failed)} failed, stopped: {first.stopped_reason}"
    )
    await assert_a_rerun_finishes(items, run_dir, failed)


async def test_a_fork_server_that_dies_while_restarting_loses_no_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first fork server is killed with episodes in flight; the one started to replace
    it dies before it is ready (killed right after it is spawned); later ones are fine."""
    original = Zygote.start
    starts: list[int] = []

    async def start(self: Zygote) -> None:
        starts.append(len(starts) + 1)
        if len(starts) != 2:
            return await original(self)
        starting = asyncio.ensure_future(original(self))
        while self.proc is None and not starting.done():
            await asyncio.sleep(0)
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
        return await starting

    monkeypatch.setattr(Zygote, "start", start)
    items = corpus(Counter(proc=20))
    run_dir = tmp_path / "run"
    killed: list[int] = []
    await run_while(kill_fork_servers(killed, times=1, pause_s=0.0), items, run_dir, 10)
    assert len(killed) == 1 and len(starts) >= 3
    failed = failed_for_infrastructure_only(run_dir)
    await assert_a_rerun_finishes(items, run_dir, failed)
