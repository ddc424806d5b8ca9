"""``python -m padiff`` runs the ``padiff`` command (see :mod:`padiff.cli`)."""

import sys

from padiff.cli import main

sys.exit(main())
