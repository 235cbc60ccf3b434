"""``python -m loopml`` runs the CLI."""

from loopml.cli.main import main

if __name__ == "__main__":
    main()
