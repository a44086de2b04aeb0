"""`python -m layergate.engine.cli`: the same as the `layergate` command."""

import sys

from . import main

sys.exit(main())
