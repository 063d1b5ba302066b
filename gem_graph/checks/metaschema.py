"""Meta-validation: is a tool's `parameters` a valid JSON Schema for its draft?

Public function:
- `metaschema_error(schema) -> str | None`: why `schema` is not a valid JSON Schema (with
  the location inside it), or None when it is.

The draft comes from `$schema` (2020-12 when absent), as `jsonschema.validators.validator_for`
picks it for argument validation. Meta-validation runs in `jsonschema_rs`: the pure-Python
`check_schema` costs about 2.6 ms of CPU per tool schema on the 2020-12 meta-schema's dynamic
references, 400× this (`benchmarks/schema_engines.py`), and was the largest CPU cost of
checking a document. Only the bundled meta-schemas are known: an unknown `$schema` is an
error, never a download.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

_OFFLINE = jsonschema_rs.Registry([])
"""A registry with nothing to add: with it, an unknown `$schema` is refused, not fetched."""


def metaschema_error(schema: Any) -> str | None:
    """Why `schema` fails its draft's meta-schema, or None if it passes."""
    try:
        jsonschema_rs.meta.validate(schema, registry=_OFFLINE)
    except jsonschema_rs.ValidationError as exc:
        path = "/".join(str(part) for part in exc.instance_path)
        at = f" at '{path}'" if path else ""
        return f"not a valid JSON Schema{at}: {exc.message}"
    except jsonschema_rs.ReferencingError:
        declared = schema.get("$schema") if isinstance(schema, dict) else None
        return f"unknown $schema {declared!r}; leave $schema out (JSON Schema 2020-12)"
    except Exception as exc:  # a value JSON cannot hold (NaN, huge ints, …) must not escape
        return f"could not be meta-validated: {type(exc).__name__}: {exc}"
    return None
