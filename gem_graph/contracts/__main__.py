"""`python -m gem_graph.contracts`: regenerate the record and reject JSON Schemas.

`--check` writes nothing and exits 1 when a committed schema file is stale.
"""

from __future__ import annotations

import sys

from gem_graph.contracts import SCHEMA_DIR, schema_texts, write_schemas


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = [
            name
            for name, text in schema_texts().items()
            if not (SCHEMA_DIR / name).exists()
            or (SCHEMA_DIR / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"stale: {SCHEMA_DIR / name} (run python -m gem_graph.contracts)")
        return 1 if stale else 0
    for path in write_schemas():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
