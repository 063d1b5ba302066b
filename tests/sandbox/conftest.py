"""Fixtures of the sandbox tests live in sandbox_helpers (a unique module name)."""

from sandbox_helpers import host, host_guard, sandbox, secret_in_environ, tier

__all__ = ["host", "host_guard", "sandbox", "secret_in_environ", "tier"]
