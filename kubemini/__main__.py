"""``python -m kubemini``: the ``kubemini`` command (see :mod:`kubemini.cli`), e.g. for ``make up``."""

import sys

from kubemini.cli import main

sys.exit(main())
