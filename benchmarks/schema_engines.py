"""Does the second JSON Schema engine pay for itself? Meta-validation CPU per tool schema.

    python benchmarks/schema_engines.py [--rounds 5] [--schemas 200]

gem-graph validates tool-call arguments with `jsonschema` (the product's dependency) and
meta-validates each extracted tool's `parameters` with `jsonschema_rs`. This compares the
CPU of meta-validating the reference environments' tool schemas both ways, in the same run:
`jsonschema`'s `check_schema` for the schema's draft against `jsonschema_rs.meta.validate`.
Each figure is the median of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jsonschema_rs  # noqa: E402
from jsonschema.validators import validator_for  # noqa: E402

from gem_graph.environment import load_environment  # noqa: E402


def tool_schemas() -> list[dict[str, Any]]:
    schemas = []
    for folder in sorted((ROOT / "environments").iterdir()):
        for tool in load_environment(folder).tools:
            schemas.append(tool["function"]["parameters"])
    return schemas


def with_jsonschema(schema: dict[str, Any]) -> None:
    validator_for(schema).check_schema(schema)


def with_jsonschema_rs(schema: dict[str, Any]) -> None:
    jsonschema_rs.meta.validate(schema)


def ms_per_schema(check: Callable[[dict[str, Any]], None], schemas: list[dict[str, Any]]) -> float:
    start = time.process_time()
    for schema in schemas:
        check(schema)
    return 1000 * (time.process_time() - start) / len(schemas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--schemas", type=int, default=200)
    args = parser.parse_args()
    found = tool_schemas()
    schemas = (found * (args.schemas // len(found) + 1))[: args.schemas]
    python = statistics.median(ms_per_schema(with_jsonschema, schemas) for _ in range(args.rounds))
    rust = statistics.median(ms_per_schema(with_jsonschema_rs, schemas) for _ in range(args.rounds))
    print(f"{len(found)} distinct tool schemas, {len(schemas)} checks per round, "
          f"median of {args.rounds} rounds (CPU)")  # fmt: skip
    print(f"{'engine':28} {'ms per schema':>14} {'x jsonschema_rs':>16}")
    print(f"{'jsonschema check_schema':28} {python:>14.3f} {python / rust:>15.1f}x")
    print(f"{'jsonschema_rs meta.validate':28} {rust:>14.3f} {1:>15.1f}x")


if __name__ == "__main__":
    main()
