"""Pure checks: each takes plain data and returns a list of problem dicts, never raising."""
