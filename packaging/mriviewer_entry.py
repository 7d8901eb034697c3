"""Entry script of the standalone bundle (PyInstaller): the same ``main`` as the console script.

``freeze_support`` lets the app's spawned compute process (``multiprocessing`` with the spawn
start method) start from the frozen executable.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from mriviewer.cli import main

    sys.exit(main())
