"""gem-graph: verified, executed multi-turn tool-use trajectories from ordinary text."""

__version__ = "0.1.0"
