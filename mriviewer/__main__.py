"""Allow ``python -m mriviewer`` (also what torchrun launches with ``-m mriviewer``)."""

from mriviewer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
