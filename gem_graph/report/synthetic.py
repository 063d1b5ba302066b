"""A synthetic run folder of any size, for the report's benchmark and tests.

`write_synthetic_run(run_dir, records=10_000)` writes a run store shaped like a real run:
kept records with multi-turn dialogues, tool calls, per-call results, row diffs, judge
verdicts, usage and source spans over a handful of saved environments, and rejects at
every stage with the usual codes. Deterministic for a given seed. Rows are inserted in
bulk in one transaction (a real run writes one transaction per document), so a
10,000-record store takes seconds to make.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

from gem_graph.environment import make_environment, save_environment
from gem_graph.run.store import RunStore

STAGES = ("filter", "extract", "implement", "ground", "refine", "judge")
REJECTS = (
    ("filter", "irrelevant", ""),
    ("extract", "unknown_tool", "workflows[0].example_calls[1]"),
    ("extract", "invalid_blueprint", "workflows[1]"),
    ("implement", "environment_crash", "tools.create_ticket"),
    ("ground", "output_mismatch", "messages[4].tool_calls[0]"),
    ("ground", "ungrounded_value", "messages[6].tool_calls[0].arguments.order_id"),
    ("refine", "turn_order", "messages[9]"),
    ("judge", "judge_failed", "R3"),
)
RUBRICS = ("R1", "R2", "R3", "R4")
PATTERNS = ("clarification", "error_recovery", "multi_hop", "rule_awareness", "rule_conflict")
TEXT = (
    "How to change an order at {shop}\n\nFind the customer by their customer number. "
    "List their orders and pick the one to change. An order that has shipped cannot be "
    "changed. Open a support ticket when the customer asks for something else.\n"
)


def _tool(name: str, description: str, **params: str) -> dict[str, Any]:
    properties = {key: {"type": "string", "description": text} for key, text in params.items()}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(params)},
        },
    }


TOOLS = [
    _tool("find_customer", "Look a customer up by number.", customer_id="customer number"),
    _tool("list_orders", "The customer's orders.", customer_id="customer number"),
    _tool("update_order", "Change an order's status.", order_id="order id", status="new status"),
    _tool("create_ticket", "Open a ticket.", customer_id="customer number", subject="subject"),
]


def _environments(run_dir: Path, count: int) -> list[dict[str, str]]:
    """Save `count` small environments under the run folder; their refs and paths."""
    out = []
    for k in range(count):
        env = make_environment(
            {
                "name": f"env_shop_{k}",
                "description": f"Orders and tickets of shop {k}.",
                "tools": TOOLS,
                "policy": "Identify the customer first. Shipped orders cannot be changed.",
                "read_only_tools": ["find_customer", "list_orders"],
            },
            "CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer_id TEXT, status TEXT);\n"
            "CREATE TABLE tickets (ticket_id TEXT PRIMARY KEY, customer_id TEXT, subject TEXT);\n",
            {"orders": [{"order_id": "O-1", "customer_id": "C-1", "status": "open"}]},
            "def find_customer(db, customer_id):\n    return {'customer_id': customer_id}\n",
        )
        path = f"environments/env_shop_{k}"
        save_environment(env, run_dir / path)
        out.append({"name": env.name, "sha256": env.content_hash(), "path": path})
    return out


def _call(n: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{n}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def synthetic_record(doc_id: str, env: dict[str, str], rng: random.Random) -> dict[str, Any]:
    """One kept record: a dialogue of 3 to 12 tool calls with results and a row diff."""
    customer = f"C-{rng.randrange(10_000, 99_999)}"
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are the shop's assistant. Identify customers first."},
        {"role": "user", "content": f"Hi, I'm customer {customer} and I need help with orders."},
    ]
    calls: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    inserted: list[dict[str, Any]] = []
    n_calls = rng.randint(3, 12)
    for n in range(1, n_calls + 1):
        order = f"O-{rng.randrange(1000, 9999)}"
        kind = ("find_customer", "list_orders", "update_order", "create_ticket")[min(n - 1, 3)]
        kind = kind if n <= 3 else rng.choice(("update_order", "create_ticket", "list_orders"))
        args: dict[str, Any] = {"customer_id": customer}
        output: Any = {"customer_id": customer, "name": "Sam Lee"}
        status = "ok"
        if kind == "list_orders":
            output = [{"order_id": order, "status": "open"}]
        elif kind == "update_order":
            args = {"order_id": order, "status": "cancelled"}
            output = {"order_id": order, "status": "cancelled"}
            if rng.random() < 0.2:
                status, output = "tool_error", "the order has shipped"
            else:
                updated.append(
                    {"key": {"order_id": order}, "before": {"status": "open"}, "after": args}
                )
        elif kind == "create_ticket":
            args = {"customer_id": customer, "subject": f"question {n} about {order}"}
            output = {"ticket_id": f"T-{n}", **args}
            inserted.append(output)
        message_index = len(messages)
        messages.append(
            {"role": "assistant", "content": None, "tool_calls": [_call(n, kind, args)]}
        )
        content = json.dumps({"error": output} if status == "tool_error" else output)
        messages.append({"role": "tool", "tool_call_id": f"call_{n}", "content": content})
        messages.append({"role": "assistant", "content": f"Done: step {n} for {order}."})
        if n % 3 == 0:
            messages.append({"role": "user", "content": f"Thanks. Now please look at {order}."})
        calls.append(
            {
                "message_index": message_index,
                "call_id": f"call_{n}",
                "tool": kind,
                "status": status,
                "output": output,
            }
        )
    messages.append({"role": "user", "content": "That's all, thank you."})
    messages.append({"role": "assistant", "content": "You're welcome."})
    failed = "R3" if rng.random() < 0.05 else None
    usage = {
        s: {"calls": 1, "input_tokens": 3000, "output_tokens": 600, "seconds": 0.5} for s in STAGES
    }
    return {
        "id": f"{doc_id}#{hashlib.sha256(doc_id.encode()).hexdigest()[:8]}",
        "source": {"doc_id": doc_id, "text_sha256": "0" * 64, "labels": {}, "meta": {}},
        "environment": {"name": env["name"], "sha256": env["sha256"]},
        "scenario": {"now": "2025-03-10T16:00:00+00:00", "rows": {}},
        "tools": TOOLS,
        "messages": messages,
        "verification": {
            "calls": calls,
            "state_diff": {
                "orders": {"inserted": [], "updated": updated, "deleted": []},
                "tickets": {"inserted": inserted, "updated": [], "deleted": []},
            },
            "final_state_sha256": hashlib.sha256(doc_id.encode()).hexdigest(),
            "deterministic": True,
            "isolation": {"tier": "standard"},
            "state_hash_version": 2,
        },
        "judge": {
            "passed": True,
            "rubrics": {
                r: {"passed": r != failed, "reason": f"{r} holds for every turn."} for r in RUBRICS
            },
        },
        "stats": {
            "messages": len(messages),
            "user_turns": sum(m["role"] == "user" for m in messages),
            "tool_calls": n_calls,
            "distinct_tools": len({c["tool"] for c in calls}),
            "errors_recovered": sum(c["status"] == "tool_error" for c in calls),
            "patterns": rng.sample(PATTERNS, 3),
            "refined": rng.random() < 0.85,
        },
        "usage": usage,
        "provenance": {
            "package": "gem-graph synthetic",
            "mode": "pipeline",
            "models": {"default": "synthetic"},
            "prompts": {},
            "spans": {
                "tools": {"find_customer": [40, 80]},
                "rules": [{"rule": "shipped", "span": [140, 184]}],
            },
        },
    }


def write_synthetic_run(
    run_dir: str | Path, *, records: int = 10_000, rejects: int = 3_000, seed: int = 0
) -> Path:
    """Write a run folder with `records` kept documents and `rejects` rejected ones."""
    folder = Path(run_dir)
    rng = random.Random(seed)
    store = RunStore(folder, create=True)
    envs = _environments(folder, 6)
    docs: list[dict[str, Any]] = []
    record_rows: list[dict[str, Any]] = []
    reject_rows: list[dict[str, Any]] = []
    usage_rows: list[dict[str, Any]] = []
    now = time.time()
    outcomes = [True] * records + [False] * rejects
    rng.shuffle(outcomes)
    for i, kept in enumerate(outcomes):
        doc_id = f"doc-{i:06d}"
        env = envs[i % len(envs)]
        stage, code, where = ("emit", None, "") if kept else REJECTS[i % len(REJECTS)]
        reached = STAGES if kept else STAGES[: STAGES.index(stage) + 1]
        reason = f"{code}: a {code} problem at {where or 'the text'}" if code else None
        docs.append(
            {
                "id": doc_id,
                "parent_id": doc_id,
                "status": "kept" if kept else "rejected",
                "stage": stage,
                "code": code,
                "reason": reason,
                "records": int(kept),
                "chars": 200,
                "text": TEXT.format(shop=env["name"]),
                "seconds": 1.0,
                "started_at": now,
                "finished_at": now + 1,
                "runs": 1,
                "settings_fingerprint": "synthetic",
                "isolation": "standard",
            }
        )
        for s in reached:
            calls = 1 if s == "filter" or rng.random() < 0.7 else rng.randint(2, 3)
            usage_rows.append(
                {
                    "doc_id": doc_id,
                    "stage": s,
                    "calls": calls,
                    "input_tokens": 3000 * calls,
                    "output_tokens": 600 * calls,
                    "seconds": 0.5 * calls,
                }
            )
        if kept:
            record = synthetic_record(doc_id, env, rng)
            record_rows.append(
                {
                    "id": record["id"],
                    "doc_id": doc_id,
                    "environment": env["sha256"],
                    "json": json.dumps(record),
                }
            )
        else:
            problem = {"code": code, "message": f"{reason}", "where": where}
            reject = {
                "doc_id": doc_id,
                "stage": stage,
                "attempts": 3,
                "code": code,
                "reason": reason,
                "problems": [problem],
                "usage": {},
            }
            reject_rows.append(
                {
                    "doc_id": doc_id,
                    "stage": stage,
                    "code": code,
                    "reason": reason,
                    "json": json.dumps(reject),
                }
            )
    db = store.db
    store.conn.execute("BEGIN IMMEDIATE")
    db.table("documents").insert_all(docs, batch_size=1000)
    db.table("records").insert_all(record_rows, batch_size=1000)
    db.table("rejects").insert_all(reject_rows, batch_size=1000)
    db.table("usage").insert_all(usage_rows, batch_size=1000)
    db.table("environments").insert_all(
        {"sha256": e["sha256"], "name": e["name"], "path": e["path"], "doc_id": "doc-000000"}
        for e in envs
    )
    store.conn.execute("COMMIT")
    store.set_meta(
        {
            "settings": {"model": {"name": "synthetic"}, "pipeline": {"mode": "pipeline"}},
            "versions": {"package": "synthetic", "prompts": {}},
            "fingerprint": "synthetic",
        }
    )
    session = store.start_session("synthetic")
    store.finish_session(session, processed=records + rejects, stopped_reason=None)
    store.close()
    return folder
