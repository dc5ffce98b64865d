"""``python -m akashone_es.cli`` runs the CLI."""

from akashone_es.cli import main

main()
