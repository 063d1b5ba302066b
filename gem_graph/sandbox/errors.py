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
