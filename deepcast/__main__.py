"""``python -m deepcast`` runs the ``deepcast`` command line."""

from deepcast.flows.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
