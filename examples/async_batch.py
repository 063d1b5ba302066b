"""Synthesize trajectories for several texts concurrently with `asynthesize`.

Offline by default: the model is the bundled demo's SCRIPTED model (hand-written replies,
no model is called); the graph, checks and sandbox are real. For a real endpoint use
`llm=gem_graph.make_chat_model()` with OPENAI_BASE_URL / OPENAI_API_KEY / GEM_MODEL set.

    python examples/async_batch.py
"""

from __future__ import annotations

import asyncio

from gem_graph import asynthesize
from gem_graph.demo import demo_documents, load_demo_model


async def main() -> None:
    documents = demo_documents()
    result = await asynthesize(documents, llm=load_demo_model(), concurrency=4)
    print(f"Scripted model replies (no model was called). {len(documents)} documents:")
    for record in result["records"]:
        stats = record["stats"]
        print(
            f"  kept     {record['source']['doc_id']}: {stats['messages']} messages, "
            f"{stats['tool_calls']} executed tool calls, "
            f"final state {record['verification']['final_state_sha256'][:12]}"
        )
    for reject in result["rejects"]:
        print(f"  rejected {reject['doc_id']} at {reject['stage']}: {reject['code']}")


if __name__ == "__main__":
    asyncio.run(main())
