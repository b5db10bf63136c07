"""``python -m jaxvi`` runs the ``jaxvi`` command."""

import sys

from jaxvi.cli import main

sys.exit(main())
