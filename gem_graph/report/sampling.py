"""Which items the viewer embeds: at most `max_items`, spread evenly over what varies.

A large run cannot embed every trajectory, and the first N would show one environment
and one kind of failure. So the budget is split between kept and rejected items (half
each; what one side cannot use goes to the other), kept items are spread evenly over
environments and rejects over reasons (stage and code), and within a group the picks are
evenly spaced through the run. Pure: no I/O; the same run always gives the same sample.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gem_graph.report.load import RecordRow, RejectRow

T = TypeVar("T")
DEFAULT_MAX_ITEMS = 200
"""Items the viewer embeds by default: about 5 MB of HTML for pipeline-sized dialogues."""


def allocate(sizes: Sequence[int], budget: int) -> list[int]:
    """Split `budget` over groups of these sizes as evenly as their sizes allow.

    Water-filling: every group gets the same share, a group smaller than its share gives
    the rest back, and leftover units go to the earliest groups that still have items.
    """
    counts = [0] * len(sizes)
    left = max(budget, 0)
    open_groups = [i for i, size in enumerate(sizes) if size > 0]
    while left > 0 and open_groups:
        share = max(left // len(open_groups), 1)
        for i in list(open_groups):
            if left == 0:
                break
            take = min(share, sizes[i] - counts[i], left)
            counts[i] += take
            left -= take
            if counts[i] == sizes[i]:
                open_groups.remove(i)
    return counts


def spread(n: int, k: int) -> list[int]:
    """`k` indices out of `range(n)`, evenly spaced (the middle of each of k equal parts)."""
    k = min(k, n)
    return [int((i + 0.5) * n / k) for i in range(k)]


def pick_evenly(items: Sequence[T], key: Callable[[T], Hashable], budget: int) -> list[T]:
    """At most `budget` items, spread evenly over the groups `key` makes, in input order."""
    groups: dict[Hashable, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(key(item), []).append(index)
    members = list(groups.values())
    chosen: list[int] = []
    for indices, count in zip(members, allocate([len(m) for m in members], budget), strict=True):
        chosen.extend(indices[i] for i in spread(len(indices), count))
    return [items[i] for i in sorted(chosen)]


@dataclass(frozen=True)
class Sample:
    """The items the viewer embeds, and the sentence that says how they were chosen."""

    records: list[RecordRow]
    rejects: list[RejectRow]
    total_records: int
    total_rejects: int
    max_items: int

    @property
    def complete(self) -> bool:
        return len(self.records) + len(self.rejects) == self.total_records + self.total_rejects

    def note(self) -> str:
        shown = len(self.records) + len(self.rejects)
        total = self.total_records + self.total_rejects
        if self.complete:
            return f"All {total:,} items of the run are shown."
        return (
            f"Showing {shown:,} of {total:,} items ({len(self.records):,} of "
            f"{self.total_records:,} kept, {len(self.rejects):,} of {self.total_rejects:,} "
            f"rejected), sampled evenly over environments and reject reasons "
            f"(--max-items {self.max_items:,}). Statistics cover the whole run."
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "shown_records": len(self.records),
            "shown_rejects": len(self.rejects),
            "total_records": self.total_records,
            "total_rejects": self.total_rejects,
            "max_items": self.max_items,
            "complete": self.complete,
            "note": self.note(),
        }


def sample_items(
    records: Sequence[RecordRow], rejects: Sequence[RejectRow], max_items: int
) -> Sample:
    """Choose the embedded items: half the budget each side, evenly within each side."""
    budget = max(max_items, 0)
    kept_budget, reject_budget = allocate([len(records), len(rejects)], budget)
    return Sample(
        records=pick_evenly(records, lambda r: r.environment or "", kept_budget),
        rejects=pick_evenly(rejects, lambda r: (r.stage, r.code), reject_budget),
        total_records=len(records),
        total_rejects=len(rejects),
        max_items=budget,
    )
