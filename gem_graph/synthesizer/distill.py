"""Distill a run into Trajectory Synthesizer training data: (instruction + text) → target.

Each kept record, with the environment it ran against, becomes one example whose answer is
the tagged target document (`render_target`). Splits are made by source document (segments
of one document stay together), so no text appears in both train and validation. Output:

    OUT_DIR/{train,validation}.openai.jsonl     {"messages": [user, assistant]}   (TRL)
    OUT_DIR/{train,validation}.sharegpt.jsonl   {"conversations", "system"}       (LLaMA-Factory)
    OUT_DIR/{train,validation}.ids.txt          the record id of each line
    OUT_DIR/README.md                           the dataset card

Source texts come from the run store's `documents.text` column when it has one, else from
the caller: a `texts` mapping or the run's corpus file (re-segmented as the run did). A record
whose text is unavailable, or differs from the hash it was made from, is skipped and
counted in the card.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gem_graph.checks.stats import trajectory_stats
from gem_graph.environment import Environment, EnvironmentFormatError, load_environment
from gem_graph.records import text_sha256
from gem_graph.synthesizer.format import TargetFormatError, render_target, target_from_parts
from gem_graph.synthesizer.graph import INSTRUCTION

SPLITS = ("train", "validation")
_DEFAULT_SEGMENT_CHARS = 8000


@dataclass
class Example:
    """One training pair and where it came from."""

    record_id: str
    doc_id: str
    group: str
    prompt: str
    target: str
    stats: dict[str, Any]
    license: str | None


@dataclass
class DistillResult:
    """What `distill_run` wrote and skipped."""

    out_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)


def user_prompt(text: str) -> str:
    """The model input of one example: the fixed instruction, then the source text."""
    return f"{INSTRUCTION}\n\n{text}"


def to_openai(example: Example) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": example.prompt},
            {"role": "assistant", "content": example.target},
        ]
    }


def to_sharegpt(example: Example) -> dict[str, Any]:
    return {
        "conversations": [
            {"from": "human", "value": example.prompt},
            {"from": "gpt", "value": example.target},
        ],
        "system": "",
    }


def split_groups(groups: Iterable[str], *, val_fraction: float, seed: int) -> set[str]:
    """The groups (source documents) that go to validation: a seeded, order-free choice.

    At least one group when `val_fraction` > 0 and there are two or more groups; never all.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    ordered = sorted(set(groups))
    if val_fraction == 0 or len(ordered) < 2:
        return set()
    wanted = min(max(1, math.ceil(val_fraction * len(ordered))), len(ordered) - 1)
    random.Random(seed).shuffle(ordered)
    return set(ordered[:wanted])


def corpus_texts(corpus: Path, *, segment_chars: int) -> dict[str, str]:
    """`{document or segment id: text}` for a corpus, segmented as a run with this size does."""
    from gem_graph.run.corpus import BadInput, read_corpus, segment_document

    texts: dict[str, str] = {}
    for item in read_corpus(corpus):
        if isinstance(item, BadInput):
            continue
        for segment in segment_document(item, segment_chars):
            texts[str(segment["id"])] = segment["text"]
    return texts


class _Environments:
    """The run's saved environments, loaded once each and checked against their hash."""

    def __init__(self, run_dir: Path, store: Any | None) -> None:
        self.run_dir = run_dir
        self.store = store
        self.cache: dict[str, Environment | None] = {}

    def get(self, ref: Mapping[str, Any]) -> Environment | None:
        sha = str(ref.get("sha256"))
        if sha not in self.cache:
            self.cache[sha] = self._load(str(ref.get("name")), sha)
        return self.cache[sha]

    def _load(self, name: str, sha: str) -> Environment | None:
        stored = self.store.environment_path(sha) if self.store is not None else None
        candidates = [self.run_dir / stored] if stored else []
        candidates.append(self.run_dir / "environments" / name)
        for folder in candidates:
            try:
                env = load_environment(folder)
            except (EnvironmentFormatError, OSError):
                continue
            if env.content_hash() == sha:
                return env
        return None


def _group(record: Mapping[str, Any]) -> str:
    source = record.get("source") or {}
    meta = source.get("meta") or {}
    return str(meta.get("parent_id") or source.get("doc_id"))


def build_examples(
    records: Iterable[Mapping[str, Any]],
    *,
    texts: Mapping[str, str],
    environment: Any,
) -> tuple[list[Example], Counter[str]]:
    """Turn records into examples; `environment(ref)` returns the `Environment` or None."""
    examples: list[Example] = []
    skipped: Counter[str] = Counter()
    for record in records:
        source = record.get("source") or {}
        doc_id = str(source.get("doc_id"))
        text = texts.get(doc_id)
        if text is None:
            skipped["source text unavailable"] += 1
            continue
        if source.get("text_sha256") and text_sha256(text) != source["text_sha256"]:
            skipped["source text differs from the one the record was made from"] += 1
            continue
        ref = record.get("environment")
        env = environment(ref) if ref else None
        if env is None:
            skipped["no executable environment" if not ref else "environment not found"] += 1
            continue
        try:
            target = render_target(
                target_from_parts(
                    tools=record["tools"],
                    schema_sql=env.schema_sql,
                    seed=env.seed,
                    tools_py=env.tools_py,
                    policy=env.policy,
                    read_only_tools=env.manifest.read_only_tools,
                    scenario=record.get("scenario"),
                    messages=record["messages"],
                    user_goal=record.get("user_goal"),
                )
            )
        except TargetFormatError:
            skipped["content cannot be rendered in the target format"] += 1
            continue
        stats = trajectory_stats(record["messages"])
        meta = source.get("meta") or {}
        license_value = meta.get("license") or meta.get("licence")
        examples.append(
            Example(
                record_id=str(record.get("id")),
                doc_id=doc_id,
                group=_group(record),
                prompt=user_prompt(text),
                target=target,
                stats={
                    "messages": stats["messages"],
                    "distinct_tools": stats["distinct_tools"],
                    "tool_calls": stats["tool_calls"],
                    "tools": len(record["tools"]),
                    "target_chars": len(target),
                },
                license=str(license_value) if license_value else None,
            )
        )
    return examples, skipped


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _describe(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"{statistics.mean(values):.1f} / {statistics.median(values):g} / "
        f"{min(values):g} / {max(values):g}"
    )


def dataset_card(
    splits: Mapping[str, list[Example]],
    *,
    skipped: Mapping[str, int],
    run_info: Mapping[str, Any],
    val_fraction: float,
    seed: int,
) -> str:
    """The README.md of the dataset: what it is, how it was split, counts, stats, provenance."""
    lines = [
        "---",
        "configs:",
        "- config_name: openai",
        "  data_files:",
        *[f"  - split: {s}\n    path: {s}.openai.jsonl" for s in SPLITS],
        "- config_name: sharegpt",
        "  data_files:",
        *[f"  - split: {s}\n    path: {s}.sharegpt.jsonl" for s in SPLITS],
        "---",
        "# Trajectory Synthesizer training data",
        "",
        "Pairs of (fixed instruction + source text) → one document holding the tools, an "
        "executable environment (SQLite schema, seed rows, Python tool code, policy), the "
        "scenario and a whole multi-turn tool-use dialogue, in the tagged format of "
        "`gem_graph.synthesizer.format` (read it back with `parse_target`). Every dialogue "
        "was replayed against its environment when the run had execution on.",
        "",
        f"Instruction: `{INSTRUCTION}`",
        "",
        '- `*.openai.jsonl`: `{"messages": [user, assistant]}` per line (TRL SFT).',
        '- `*.sharegpt.jsonl`: `{"conversations": [human, gpt], "system"}` per line '
        "(LLaMA-Factory).",
        "- `*.ids.txt`: the source record id of each line.",
        "",
        f"Split by source document (segments of one document stay together), seed {seed}, "
        f"validation fraction {val_fraction}. No source text is in both splits.",
        "",
        "## Counts",
        "",
        "| split | examples | source documents |",
        "|---|---|---|",
    ]
    for name in SPLITS:
        examples = splits.get(name, [])
        lines.append(f"| {name} | {len(examples)} | {len({e.group for e in examples})} |")
    everything = [e for name in SPLITS for e in splits.get(name, [])]
    lines += [
        "",
        "## Statistics per example (mean / median / min / max)",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    for key in ("messages", "tools", "distinct_tools", "tool_calls", "target_chars"):
        lines.append(f"| {key} | {_describe([e.stats[key] for e in everything])} |")
    if skipped:
        lines += ["", "## Records left out", ""]
        lines += [f"- {reason}: {count}" for reason, count in sorted(skipped.items())]
    licenses = Counter(e.license or "unknown" for e in everything)
    lines += ["", "## Source licences", ""]
    if set(licenses) == {"unknown"}:
        lines.append("The corpus metadata states no licence; check the source's terms.")
    else:
        lines += [f"- {name}: {count} examples" for name, count in sorted(licenses.items())]
    lines += ["", "## The run", "", "```json", json.dumps(run_info, indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"


def _run_info(store: Any | None, run_dir: Path) -> dict[str, Any]:
    info: dict[str, Any] = {"run": run_dir.name}
    if store is not None:
        for key in ("versions", "output_settings"):
            value = store.get_meta(key)
            if value is not None:
                info[key] = value
    return info


def _stored_texts(store: Any | None) -> dict[str, str]:
    """Texts the run store kept, if its `documents` table has a `text` column."""
    if store is None or "text" not in store.db["documents"].columns_dict:
        return {}
    rows = store.conn.execute("SELECT id, text FROM documents WHERE text IS NOT NULL")
    return {str(doc_id): str(text) for doc_id, text in rows}


def _segment_chars(store: Any | None) -> int:
    options = (store.get_meta("options") if store is not None else None) or {}
    return int(options.get("segment_chars") or _DEFAULT_SEGMENT_CHARS)


def distill_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    texts: Mapping[str, str] | None = None,
    corpus: str | Path | None = None,
    records: Iterable[Mapping[str, Any]] | str | Path | None = None,
) -> DistillResult:
    """Write the synthesizer training set of a run's kept records to `out_dir`.

    Records come from the run store (`RUN_DIR/run.sqlite`), or from `records` (a list or
    a records JSONL path). Texts come from `texts` and/or `corpus` (see the module doc).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    store = None
    from gem_graph.run.store import STORE_FILE, RunStore

    if (run_dir / STORE_FILE).exists():
        store = RunStore(run_dir)
    try:
        if records is None:
            if store is None:
                raise FileNotFoundError(f"{run_dir} holds no run store ({STORE_FILE})")
            source: Iterable[Mapping[str, Any]] = list(store.iter_records())
        elif isinstance(records, str | Path):
            lines = Path(records).read_text(encoding="utf-8").splitlines()
            source = [json.loads(line) for line in lines if line.strip()]
        else:
            source = list(records)
        known: dict[str, str] = _stored_texts(store)
        if corpus is not None:
            known.update(corpus_texts(Path(corpus), segment_chars=_segment_chars(store)))
        known.update(texts or {})
        examples, skipped = build_examples(
            source, texts=known, environment=_Environments(run_dir, store).get
        )
        run_info = _run_info(store, run_dir)
    finally:
        if store is not None:
            store.close()

    validation = split_groups((e.group for e in examples), val_fraction=val_fraction, seed=seed)
    splits = {
        "train": [e for e in examples if e.group not in validation],
        "validation": [e for e in examples if e.group in validation],
    }
    result = DistillResult(out_dir=out_dir, skipped=skipped)
    for name, chosen in splits.items():
        result.counts[name] = len(chosen)
        result.documents[name] = len({e.group for e in chosen})
        result.files.append(_write_jsonl(out_dir / f"{name}.openai.jsonl", map(to_openai, chosen)))
        result.files.append(
            _write_jsonl(out_dir / f"{name}.sharegpt.jsonl", map(to_sharegpt, chosen))
        )
        ids = out_dir / f"{name}.ids.txt"
        ids.parent.mkdir(parents=True, exist_ok=True)
        ids.write_text("".join(f"{e.record_id}\n" for e in chosen), encoding="utf-8")
        result.files.append(ids)
    card = out_dir / "README.md"
    card.write_text(
        dataset_card(
            splits, skipped=skipped, run_info=run_info, val_fraction=val_fraction, seed=seed
        ),
        encoding="utf-8",
    )
    result.files.append(card)
    return result
