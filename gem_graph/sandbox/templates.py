"""Database templates, kept by content: one build per schema and seed, many episodes.

A template is a fork server holding one built database and its baseline digest. Episodes
fork from it copy-on-write, so none sees another's writes and none pays to build, copy or
hash what it did not change. The cache keeps the most recently used templates; it retires
an idle one when it holds more than its capacity.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from typing import TYPE_CHECKING, Any

from gem_graph.dbstate import canonical_json
from gem_graph.sandbox.forkserver import Template, Zygote

if TYPE_CHECKING:
    from gem_graph.sandbox.episode import DatabaseSpec


def template_key(database: DatabaseSpec) -> str:
    """Which template serves `database`: its `key`, or a hash of its schema and seed."""
    given = database.get("key")
    if given:
        return str(given)
    payload = {"schema_sql": database.get("schema_sql", ""), "seed": database.get("seed") or {}}
    return hashlib.sha256(canonical_json(payload).encode("utf-8", "surrogatepass")).hexdigest()


class TemplateCache:
    """Live templates by key; concurrent requests for one key share a single build."""

    def __init__(self, capacity: int, build_timeout_s: float) -> None:
        self.capacity = capacity
        self.build_timeout_s = build_timeout_s
        self._entries: collections.OrderedDict[str, asyncio.Task[Template]] = (
            collections.OrderedDict()
        )
        self._retired_cpu_s = 0.0

    async def get(self, zygote: Zygote, database: DatabaseSpec) -> Template:
        """The live template for `database`, built on first use or after it died.

        Raises `InvalidDatabase` (not cached: the next request builds again) and
        `SandboxInfrastructureError`.
        """
        key = template_key(database)
        task = self._entries.get(key)
        if task is None or not _usable(task):
            if task is not None:
                await self._retire(key)
            spec = {"schema_sql": database.get("schema_sql", ""),
                    "seed": database.get("seed") or {}}  # fmt: skip
            task = asyncio.ensure_future(Template.start(zygote, spec, self.build_timeout_s))
            task.add_done_callback(_consume_exception)
            self._entries[key] = task
        self._entries.move_to_end(key)
        await self._trim()
        return await asyncio.shield(task)

    @property
    def reaped_cpu_s(self) -> float:
        """CPU of every template's ended episodes, retired templates included."""
        live = sum(t.result().reaped_cpu_s for t in self._entries.values() if _built(t))
        return self._retired_cpu_s + live

    async def _trim(self) -> None:
        idle = [
            key
            for key, task in self._entries.items()
            if task.done() and not (_built(task) and task.result().live_children)
        ]
        while len(self._entries) > self.capacity and idle:
            await self._retire(idle.pop(0))

    async def _retire(self, key: str) -> None:
        task = self._entries.pop(key)
        if _built(task):
            template = task.result()
            await template.close()
            self._retired_cpu_s += template.reaped_cpu_s

    async def aclose(self) -> None:
        for key in list(self._entries):
            task = self._entries[key]
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self._retire(key)


def _built(task: asyncio.Task[Template]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


def _usable(task: asyncio.Task[Template]) -> bool:
    return not task.done() or (_built(task) and task.result().alive)


def _consume_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
