"""``python -m pipelines`` runs the ``matcher`` CLI."""

from pipelines.cli import main

main()
