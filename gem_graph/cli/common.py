"""What every subcommand shares: exit codes, the usage error, the subparsers type."""

from __future__ import annotations

import argparse
from typing import TypeAlias

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""
