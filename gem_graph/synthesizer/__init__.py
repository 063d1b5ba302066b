"""The Trajectory Synthesizer: one model call turns a text into tools, environment and dialogue.

- `format`: the tagged target document (`render_target` / `parse_target`);
- `graph`: synthesizer mode, a document graph with one generation and the usual checks;
- `distill`: a run's kept records as synthesizer training data.
"""

from __future__ import annotations

from gem_graph.synthesizer.distill import distill_run
from gem_graph.synthesizer.format import (
    SECTIONS,
    SynthTarget,
    TargetFormatError,
    parse_target,
    render_target,
    target_from_parts,
)
from gem_graph.synthesizer.graph import (
    INSTRUCTION,
    build_synthesizer_graph,
    build_synthesizer_state_graph,
)

__all__ = [
    "INSTRUCTION",
    "SECTIONS",
    "SynthTarget",
    "TargetFormatError",
    "build_synthesizer_graph",
    "build_synthesizer_state_graph",
    "distill_run",
    "parse_target",
    "render_target",
    "target_from_parts",
]
