"""``python -m jaxvi`` runs the ``jaxvi`` command."""

from jaxvi.cli import run

run()
