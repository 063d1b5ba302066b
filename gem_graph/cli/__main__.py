"""`python -m gem_graph.cli ...`: the `gem-graph` command."""

import sys

from gem_graph.cli import main

sys.exit(main())
