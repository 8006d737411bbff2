"""``python -m kombify`` runs the CLI (the supervisor starts its children this way)."""

from kombify.cli.main import main

main()
