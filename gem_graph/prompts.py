"""Load the versioned prompt files in `prompts/` and render them into chat messages.

A prompt file is TOML front matter between `+++` lines (`name`, `version`, `description`),
then a `<<<system>>>` section and a `<<<user>>>` section. Sections are `string.Template`
texts: `$name` is a variable, `$$` a literal dollar sign.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from string import Template

from gem_graph.resources import data_dir

_SECTION = re.compile(r"^<<<(system|user)>>>\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    system: Template
    user: Template

    @property
    def key(self) -> str:
        """`name@version`, recorded in provenance and cache keys."""
        return f"{self.name}@{self.version}"

    def variables(self) -> set[str]:
        """The variable names the sections expect."""
        found: set[str] = set()
        for template in (self.system, self.user):
            for match in template.pattern.finditer(template.template):
                name = match.group("named") or match.group("braced")
                if name:
                    found.add(name)
        return found

    def render(self, **values: object) -> list[dict[str, str]]:
        """Fill both sections; a missing variable is a programming error and raises KeyError."""
        text = {k: v if isinstance(v, str) else str(v) for k, v in values.items()}
        return [
            {"role": "system", "content": self.system.substitute(text).strip()},
            {"role": "user", "content": self.user.substitute(text).strip()},
        ]


def parse_prompt(source: str, *, origin: str = "<string>") -> Prompt:
    """Parse the text of a prompt file."""
    parts = source.split("+++")
    if len(parts) < 3 or parts[0].strip():
        raise ValueError(f"{origin}: a prompt file starts with TOML front matter between +++ lines")
    meta = tomllib.loads(parts[1])
    body = "+++".join(parts[2:])
    pieces = _SECTION.split(body)
    sections = dict(zip(pieces[1::2], pieces[2::2], strict=True))
    missing = {"system", "user"} - sections.keys()
    if missing:
        raise ValueError(f"{origin}: missing section(s) {sorted(missing)}")
    try:
        return Prompt(
            name=str(meta["name"]),
            version=int(meta["version"]),
            system=Template(sections["system"]),
            user=Template(sections["user"]),
        )
    except KeyError as exc:
        raise ValueError(f"{origin}: front matter needs {exc.args[0]!r}") from None


@functools.cache
def load_prompt(name: str) -> Prompt:
    """Load `prompts/<name>.md`."""
    path = data_dir("prompts") / f"{name}.md"
    prompt = parse_prompt(path.read_text(encoding="utf-8"), origin=str(path))
    if prompt.name != name:
        raise ValueError(f"{path}: front matter names {prompt.name!r}, expected {name!r}")
    return prompt
