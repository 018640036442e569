"""`python -m rca`: the same command as the `rca` console script."""

from rca.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
