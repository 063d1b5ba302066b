"""The environment API: one task played as an episode, in Gymnasium's style.

    env = TaskEnvironment(sandbox, catalog, user=ScriptedUser())
    observation = await env.reset(task)                       # system + first user turn
    observation, reward, terminated, truncated, info = await env.step(assistant_message)
    await env.close()

Each `reset` opens a fresh sandbox episode on the task's initial state (the environment's
seed plus the scenario rows), so episodes never share writes. An assistant message with
`tool_calls` has every call validated against the task's tools and executed in the
sandbox; the observation is the tool messages. One without calls is said to the user; the
observation is the user's answer. The episode terminates when the user stops, and is
truncated at the turn, time or token cap. The reward is computed at the end only.

Raises `TaskError` from `reset` for a task that cannot be played (including one whose
tools differ from its environment's: calls are checked against the trusted environment's
schemas, never the task file's), and lets `SandboxInfrastructureError` propagate: the
machine failing is not a 0 reward. `waiting` says which party the episode is waiting on
(`sandbox`, `user`, or `agent` when the runner asks it) and `waited` how long each took,
so a timeout can be blamed right.

A tool process that dies (crash, CPU or output limit, a call past its own timeout) ends the
episode with 0 `environment_crash`: the tool code did it on the agent's arguments, and a
re-run would do the same, so it is not retried as infrastructure. The sandbox's episode
deadline running out is the agent's slowness: 0 `time_budget`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from gem_graph.checks.arguments import check_call, parse_arguments
from gem_graph.checks.execution import tool_message_content
from gem_graph.checks.tools import tool_parameters
from gem_graph.dbstate import canonical_json
from gem_graph.eval.catalog import Catalog, TaskError
from gem_graph.eval.reward import Reward, score, zero
from gem_graph.eval.task import EvalTask
from gem_graph.eval.user import ScriptedUser, UserSimulator

if TYPE_CHECKING:
    from gem_graph.sandbox import Episode, Sandbox

Observation = dict[str, Any]
StepResult = tuple[Observation, float, bool, bool, dict[str, Any]]


class EpisodeLimits(BaseModel):
    """Caps of one episode: assistant turns, wall-clock seconds, model tokens (agent + user)."""

    max_turns: int = Field(default=30, ge=1)
    time_budget_s: float = Field(default=300.0, gt=0)
    token_budget: int | None = Field(default=None, ge=1)
    max_calls_per_turn: int = Field(default=32, ge=1)
    """Calls one assistant message may make; the rest are answered with an error, unrun."""


class TaskEnvironment:
    """Plays one task at a time; `reset` starts a new isolated episode, `close` ends it."""

    def __init__(
        self,
        sandbox: Sandbox,
        catalog: Catalog,
        *,
        user: UserSimulator | None = None,
        limits: EpisodeLimits | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.catalog = catalog
        self.user: UserSimulator = user or ScriptedUser()
        self.limits = limits or EpisodeLimits()
        self.task: EvalTask | None = None
        self.messages: list[dict[str, Any]] = []
        self.turns = 0
        self.tokens = 0
        self.tool_calls = 0
        self.tool_crashes = 0
        self.done = False
        self.result: Reward | None = None
        self._episode: Episode | None = None
        self._parameters: dict[str, dict[str, Any]] = {}
        self._started = 0.0
        self._final: dict[str, Any] = {}
        self.tools: list[dict[str, Any]] = []
        self.waiting: str | None = None
        """`sandbox`, `user` or `agent`: whom the episode waits on (for blaming a timeout)."""
        self.waited: dict[str, float] = {}

    # ------------------------------------------------------------------ Gymnasium-style API

    async def reset(self, task: EvalTask) -> Observation:
        """Start `task` in a fresh episode; the observation holds the opening messages."""
        from gem_graph.sandbox import DatabaseSpec, InvalidDatabase, SandboxError
        from gem_graph.sandbox.errors import SandboxInfrastructureError, SandboxUnavailable

        await self.close()
        check_deadline(self.sandbox, self.limits)
        self.task, self.messages, self.done, self.result = None, [], False, None
        self.waiting, self.waited = None, {}
        environment = self.catalog.get(task)
        if _tools_key(task.tools) != _tools_key(environment.tools):
            raise TaskError(
                "environment_mismatch",
                f"the task's tools differ from those of environment {environment.name!r}",
            )
        self.task = task
        self.turns = self.tokens = self.tool_calls = self.tool_crashes = 0
        self._final = {}
        self._started = time.monotonic()
        self.tools = list(environment.tools)
        self._parameters = tool_parameters(self.tools)
        database = DatabaseSpec(
            schema_sql=environment.schema_sql,
            seed=environment.seed,
            rows=task.scenario.rows or None,
            key=environment.database_key,
        )
        try:
            with self.waiting_on("sandbox"):
                self._episode = await self.sandbox.open_episode(
                    environment.tools_py, database, now=task.scenario.now, seed=0
                )
        except InvalidDatabase as exc:
            raise TaskError("invalid_state", f"the initial state does not build: {exc}") from None
        except (SandboxInfrastructureError, SandboxUnavailable):
            raise
        except SandboxError as exc:
            raise TaskError("environment_crash", f"the episode could not start: {exc}") from None
        with self.waiting_on("sandbox"):
            load = await self._episode.load()
        if not load.get("ok"):
            await self.close()
            raise TaskError("environment_crash", f"tools.py does not load: {load.get('error')}")
        if task.system:
            self.messages.append({"role": "system", "content": task.system})
        with self.waiting_on("user"):
            opening = await self.user.opening(task)
        self.tokens += opening.tokens
        if opening.text:
            self.messages.append({"role": "user", "content": opening.text})
        observation = {"messages": list(self.messages), "tools": self.tools}
        if opening.stop:  # the user is done before the agent said a word
            await self._finish(observation)
        return observation

    async def step(self, message: dict[str, Any]) -> StepResult:
        """Take one assistant message; returns `(observation, reward, terminated, truncated,
        info)`. The reward is 0.0 until the episode ends."""
        if self.done:
            raise RuntimeError("the episode is over; call reset(task)")
        if self.task is None or self._episode is None:
            raise RuntimeError("call reset(task) before step()")
        task = self.task
        message = _assistant_message(message)
        self.messages.append(message)
        self.turns += 1
        new: list[dict[str, Any]] = []
        calls = message.get("tool_calls") or []
        for index, call in enumerate(calls):
            content: str | Reward = json.dumps({"error": "too many calls in one turn; not run"})
            if index < self.limits.max_calls_per_turn:
                content = await self._run_call(call)
            if isinstance(content, Reward):
                self.messages.extend(new)
                return await self._end(content)
            new.append({"role": "tool", "tool_call_id": call.get("id"), "content": content})
        self.messages.extend(new)
        if not calls:
            with self.waiting_on("user"):
                reply = await self.user.reply(task, self.messages)
            self.tokens += reply.tokens
            if reply.text:
                user_message = {"role": "user", "content": reply.text}
                self.messages.append(user_message)
                new.append(user_message)
            if reply.stop:
                return await self._finish({"messages": new})
        cut = self._over_cap()
        if cut is not None:
            return await self._end(cut, {"messages": new})
        return {"messages": new}, 0.0, False, False, self.info()

    # ------------------------------------------------------------------ for framework tools

    async def call_tool(self, name: str, arguments: dict[str, Any] | str, call_id: str) -> str:
        """Execute one call as a framework's tool would (LangChain, `environment_tools`).

        The call and its answer join the transcript as an assistant tool call and a tool
        message, and count as one assistant turn. Returns the tool message content.
        """
        if self._episode is None or self.done:
            return json.dumps({"error": "the episode is over"})
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": raw}}
        self.messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        content = await self._run_call(call)
        if isinstance(content, Reward):
            await self._end(content)
            return json.dumps({"error": "the tool process died"})
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        self.turns += 1
        cut = self._over_cap()
        if cut is not None:
            await self._end(cut)
        return content

    def add_tokens(self, tokens: int) -> None:
        """Count model tokens the agent spent (the user simulator's are counted here)."""
        self.tokens += max(0, int(tokens))

    def info(self) -> dict[str, Any]:
        """The episode so far: turns, calls, tokens, seconds, and the score when it ended."""
        out: dict[str, Any] = {
            "turns": self.turns,
            "tool_calls": self.tool_calls,
            "tool_crashes": self.tool_crashes,
            "tokens": self.tokens,
            "seconds": round(time.monotonic() - self._started, 3),
        }
        if self.result is not None:
            out["reward"] = self.result.model_dump()
            out.update(self._final)
        return out

    def over_time(self) -> bool:
        return time.monotonic() - self._started > self.limits.time_budget_s

    async def truncate(self, reward: Reward) -> StepResult:
        """End the episode early with `reward` (the runner's wall-clock budget, for one)."""
        return await self._end(reward)

    async def close(self) -> None:
        """End the sandbox episode (idempotent)."""
        episode, self._episode = self._episode, None
        if episode is not None:
            with self.waiting_on("sandbox"):
                await episode.close()

    async def state_sha256(self) -> str:
        """The episode's current database hash (the gold check reads the initial one)."""
        assert self._episode is not None, "call reset(task) first"
        with self.waiting_on("sandbox"):
            state = await self._episode.state(diff=False)
        return state["sha256"]

    @contextlib.contextmanager
    def waiting_on(self, party: str) -> Iterator[None]:
        """Mark whom the episode waits on, and count their seconds. Left set when the wait
        is interrupted, so a timeout's handler knows who did not answer."""
        self.waiting, start = party, time.monotonic()
        try:
            yield
        finally:
            self.waited[party] = self.waited.get(party, 0.0) + time.monotonic() - start
        self.waiting = None

    # ------------------------------------------------------------------ internals

    async def _run_call(self, call: Any) -> str | Reward:
        """The tool message for one call, or the 0 reward when the tool process is gone."""
        from gem_graph.sandbox import FATAL

        assert self._episode is not None
        self.tool_calls += 1
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        raw = function.get("arguments") if isinstance(function, dict) else None
        problems = check_call(name, raw, self._parameters, "call")
        if problems:
            return json.dumps({"error": problems[0]["message"]}, ensure_ascii=False)
        assert isinstance(name, str) and isinstance(raw, str)
        arguments = parse_arguments(raw)
        assert arguments is not None  # check_call parsed it
        with self.waiting_on("sandbox"):
            result = await self._episode.call(name, arguments)
        status = result.get("status")
        if status in ("ok", "tool_error"):
            return tool_message_content(result)
        if status in FATAL:
            error = str(result.get("error") or status)
            if status == "timeout" and "episode exceeded" in error:
                return zero("time_budget", f"the sandbox's episode deadline: {error}")
            return zero("environment_crash", f"the tool process died: {error}"[:500])
        self.tool_crashes += 1  # an environment bug; the agent sees a generic failure
        return json.dumps({"error": f"{name} failed unexpectedly"})

    def _over_cap(self) -> Reward | None:
        if self.turns >= self.limits.max_turns:
            return zero("max_turns", f"no end after {self.turns} assistant turns")
        if self.over_time():
            return zero("time_budget", f"over {self.limits.time_budget_s}s")
        budget = self.limits.token_budget
        if budget is not None and self.tokens > budget:
            return zero("token_budget", f"{self.tokens} tokens, over the {budget} budget")
        return None

    async def _finish(self, observation: Observation) -> StepResult:
        """The user stopped: read the final state and score the episode."""
        assert self.task is not None and self._episode is not None
        with self.waiting_on("sandbox"):
            state = await self._episode.state(diff=True)
        self._final = {"final_state_sha256": state["sha256"], "state_diff": state["diff"]}
        self.result = score(self.task, state["sha256"], self.messages, state["diff"])
        self.done = True
        await self.close()
        return observation, self.result.reward, True, False, self.info()

    async def _end(self, reward: Reward, observation: Observation | None = None) -> StepResult:
        self.result, self.done = reward, True
        await self.close()
        return observation or {"messages": []}, 0.0, False, True, self.info()


def check_deadline(sandbox: Any, limits: EpisodeLimits) -> None:
    """Refuse a sandbox whose own episode deadline ends before the time budget: a working
    agent would be killed mid-episode (run `run_eval`, or give `episode_timeout_s`)."""
    settings = getattr(sandbox, "settings", None)
    deadline = getattr(settings, "episode_timeout_s", None)
    if isinstance(deadline, int | float) and deadline < limits.time_budget_s:
        raise ValueError(
            f"the sandbox's episode_timeout_s ({deadline}s) is shorter than the episode "
            f"time budget ({limits.time_budget_s}s); give the Sandbox "
            "SandboxSettings(episode_timeout_s=...) at least the budget, or lower "
            "EpisodeLimits.time_budget_s"
        )


def _tools_key(tools: list[dict[str, Any]]) -> list[str]:
    """Tool specs compared by content, in any order."""
    return sorted(canonical_json(tool) for tool in tools)


def _assistant_message(message: dict[str, Any]) -> dict[str, Any]:
    """The assistant message reduced to the OpenAI fields the transcript keeps."""
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        out["tool_calls"] = [call for call in calls if isinstance(call, dict)]
    if not isinstance(out["content"], str):
        out["content"] = None if out.get("tool_calls") else ""
    return out
