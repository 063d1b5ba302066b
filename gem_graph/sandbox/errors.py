"""Exceptions raised by the sandbox to the trusted caller."""

from __future__ import annotations


class SandboxError(Exception):
    """Base class of every sandbox failure that reaches the caller."""


class SandboxUnavailable(SandboxError):
    """The requested isolation tier cannot be applied; the tool code was not run."""


class InvalidDatabase(SandboxError):
    """The database returned by a worker failed the defensive checks."""


class EpisodeClosed(SandboxError):
    """The episode was closed, or its worker is dead, so no database can be taken from it."""


class SandboxInfrastructureError(SandboxError):
    """The machine misbehaved, not the code under test: the fork server died, a worker could
    not start or the control channel broke. Callers retry; it is never a verdict on the
    trajectory (a document that still cannot run ends `failed`, and a re-run retries it)."""

    infrastructure = True
