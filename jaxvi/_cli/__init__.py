"""The ``jaxvi`` command's subcommands (:mod:`jaxvi.cli` assembles them)."""
