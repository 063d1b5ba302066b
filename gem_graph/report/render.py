"""HTML from a view model: Jinja2 templates in the package, autoescaped, one file out.

The page is self-contained: the stylesheet and the viewer's scripts are inlined from the
template folder, charts are SVG, and the data the viewer draws travels as JSON in a
`<script type="application/json">` block. A Content-Security-Policy meta tag allows only
the inline script whose hash the page was rendered with and no network at all, so even
a string that escaped every other layer could neither run nor load anything.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

import jinja2
from markupsafe import Markup

TEMPLATES = "templates"
SCRIPTS = ("draw.js", "viewer.js")
"""The page's script, in order: drawing one item, then the views, list and filters."""
STYLE = "report.css"


@functools.cache
def environment() -> jinja2.Environment:
    """The template environment: package templates, autoescaping on, undefined is an error."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gem_graph.report", TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = number
    env.filters["pct"] = percent
    return env


def number(value: Any, digits: int = 1) -> str:
    """Thousands separated; floats to `digits` places unless whole; `–` for None."""
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.{digits}f}"
    return f"{int(value):,}"


def percent(value: Any) -> str:
    """A fraction as a percentage; `–` for None."""
    return "–" if value is None else f"{100 * float(value):.1f}%"


def script_json(value: Any) -> Markup:
    """`value` as JSON that is safe inside a `<script>` element.

    `<`, `>` and `&` are written as `\\u003c`, `\\u003e` and `\\u0026` (so no `</script>`
    or `<!--` can appear), and U+2028/U+2029 escaped; JSON.parse reads them back as the
    same characters.
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return Markup(text)


def _asset(name: str) -> str:
    loader = environment().loader
    assert loader is not None
    source, _, _ = loader.get_source(environment(), name)
    return source


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def render_page(template: str, context: dict[str, Any], *, data: Any = None) -> str:
    """Render `template` with `context`; `data` goes to the page's JSON block."""
    script = "\n".join(_asset(name) for name in SCRIPTS)
    if "</script" in script.lower() or "<!--" in script:
        raise ValueError(f"{SCRIPTS} must not contain '</script' or '<!--'")
    return (
        environment()
        .get_template(template)
        .render(
            **context,
            style=Markup(_asset(STYLE)),
            script=Markup(script),
            csp=_csp(script),
            data_json=script_json(data if data is not None else {}),
        )
    )
