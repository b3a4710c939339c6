"""``python -m skspivae``: the same command line as ``skspivae``."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
