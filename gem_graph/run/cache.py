"""A SQLite LLM response cache that plugs into LangChain's own cache path.

Set it on a chat model (`llm.model_copy(update={"cache": SQLiteLLMCache(path)})`) and every
`BaseChatModel` call looks it up before calling the server. LangChain hands the cache:
- `prompt`: the serialized input messages. Our prompts are rendered from the stage's
  prompt file, so the text identifies the stage, and it contains the document text and
  any feedback (the input).
- `llm_string`: the model's serialized constructor arguments (model name, temperature,
  max tokens, …) plus the call's bound parameters (`response_format` / `tools`, i.e. the
  structured-output method and schema).

The key is sha256(namespace, prompt, llm_string). The `namespace` adds the prompt keys
(`name@version` of every stage prompt) explicitly, because a prompt version bump need not
change the rendered text. Transport-only constructor arguments (base URL, timeout, retry
count, API key reference) are dropped from `llm_string`, so the same model answers from the
cache wherever it is served.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core._api.beta_decorator import LangChainBetaWarning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import dumps, loads
from pydantic import BaseModel

_TRANSPORT_KWARGS = (
    "openai_api_base",
    "base_url",
    "openai_api_key",
    "api_key",
    "request_timeout",
    "timeout",
    "max_retries",
    "http_client",
    "http_async_client",
    "openai_proxy",
    "default_headers",
)


def normalize_llm_string(llm_string: str) -> str:
    """Drop transport-only constructor arguments from LangChain's serialized model string."""
    head, sep, params = llm_string.partition("---")
    try:
        serialized = json.loads(head)
    except ValueError:
        return llm_string
    if isinstance(serialized, dict) and isinstance(serialized.get("kwargs"), dict):
        for key in _TRANSPORT_KWARGS:
            serialized["kwargs"].pop(key, None)
        head = json.dumps(serialized, sort_keys=True)
    return head + sep + params


def _storable(generation: Any) -> Any:
    """A generation whose message carries no live pydantic object (`parsed` as plain JSON).

    ChatOpenAI's json_schema path puts the parsed pydantic answer in
    `additional_kwargs["parsed"]`; its parser accepts a dict there just as well.
    """
    message = getattr(generation, "message", None)
    extra = getattr(message, "additional_kwargs", None) or {}
    parsed = extra.get("parsed")
    if message is None or not isinstance(parsed, BaseModel):
        return generation
    plain = {**extra, "parsed": parsed.model_dump(mode="json")}
    return generation.model_copy(
        update={"message": message.model_copy(update={"additional_kwargs": plain})}
    )


class SQLiteLLMCache(BaseCache):
    """LLM responses in a SQLite file, shared safely by threads and processes (WAL mode)."""

    def __init__(self, path: str | Path, *, namespace: str = "") -> None:
        self.path = Path(path)
        self.namespace = namespace
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS llm_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "llm TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        self.hits = 0
        self.misses = 0

    def key(self, prompt: str, llm_string: str) -> str:
        digest = hashlib.sha256()
        for part in (self.namespace, prompt, normalize_llm_string(llm_string)):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
        return digest.hexdigest()

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations for this prompt and model, or None."""
        key = self.key(prompt, llm_string)
        with self._lock:
            row = self._conn.execute("SELECT value FROM llm_cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LangChainBetaWarning)
                generations = loads(row[0], allowed_objects="core")
        except Exception:
            self.misses += 1
            return None
        self.hits += 1
        return list(generations)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store the generations of one call (replacing an older entry for the same key)."""
        try:
            value = dumps([_storable(generation) for generation in return_val])
        except Exception:
            return  # an unserialisable answer is simply not cached
        model = normalize_llm_string(llm_string)[:2000]
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO llm_cache (key, value, llm, created_at) "
                "VALUES (?, ?, ?, ?)",
                (self.key(prompt, llm_string), value, model, time.time()),
            )

    def clear(self, **kwargs: Any) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM llm_cache")

    # SQLite lookups take microseconds: answering inline beats a thread hop per call.
    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self.lookup(prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Any]) -> None:
        self.update(prompt, llm_string, list(return_val))

    async def aclear(self, **kwargs: Any) -> None:
        self.clear()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
