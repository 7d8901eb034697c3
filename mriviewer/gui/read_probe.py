"""Read a user's HDF5 file in a helper process first, so that a crash inside libhdf5 on a
corrupt file ends the helper, not the app.

h5py raises exceptions for almost every kind of damage, but a small share of corrupted files
(about 1 in 500 of randomly bit-flipped ones in our fuzzing) make the C library itself crash,
taking the whole interpreter with it. The app's readers are deterministic, so if a helper
process read the same header and slice without crashing, the UI process can read them too.

The helper is spawned on first use and kept (one read costs the read itself, not a start-up);
it is replaced after a crash. Qt-free: the main window calls :meth:`ReadProbe.check` before it
opens a file or reads another slice of an HDF5 file.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: byte offsets at which an HDF5 superblock may start (0 or 512 * 2**n, e.g. MATLAB v7.3's 512)
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: seconds one probe read may take before the helper is stopped
PROBE_TIMEOUT_S = 120.0


def is_hdf5(path: str | Path) -> bool:
    """True if ``path`` is an HDF5 container (fastMRI, ISMRMRD, MATLAB v7.3)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(max(_HDF5_OFFSETS) + len(_HDF5_SIGNATURE))
    except OSError:
        return False
    return any(head[o : o + len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE for o in _HDF5_OFFSETS)


def read_slice_for_probe(path: str, index: int | None) -> int:
    """What the app reads when it opens ``path`` (header, one slice's k-space and reference);
    returns the slice index read (the middle one when ``index`` is None)."""
    from mriviewer.core.io import open_kspace

    volume = open_kspace(path)  # readers open the file per read: nothing to close
    chosen = volume.num_slices // 2 if index is None else volume.select_index(index)
    volume.read_kspace(chosen)
    volume.read_reference(chosen)
    return int(chosen)


def _probe_main(conn, reader: Callable[[str, int | None], int]) -> None:
    """Helper process: answer ``(path, index)`` requests until told to stop."""
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        path, index = request
        try:
            reply = ("ok", reader(path, index))
        except Exception as exc:  # noqa: BLE001 - the app shows the reader's own message
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


@dataclass
class ProbeResult:
    """``ok``: the helper read it; ``crashed``: reading it killed the helper (``reason``);
    ``error``: the reader raised (``reason``: its message; the app's own read will raise too)."""

    status: str
    reason: str = ""


class ReadProbe:
    """A long-lived helper process that reads files before the UI process does."""

    def __init__(
        self,
        reader: Callable[[str, int | None], int] = read_slice_for_probe,
        timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self.reader = reader
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._process = None
        self._conn = None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=True)
        self._process = ctx.Process(
            target=_probe_main, args=(child, self.reader), name="mriviewer-read-probe", daemon=True
        )
        self._process.start()
        child.close()

    def _discard(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(2.0)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def check(self, path: str | Path, index: int | None = None) -> ProbeResult:
        """Have the helper read ``path`` (slice ``index``) the way the app will."""
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._discard()
                self._start()
            try:
                self._conn.send((str(path), index))
                if self._conn.poll(self.timeout_s):
                    status, value = self._conn.recv()
                    if status == "ok":
                        return ProbeResult("ok")
                    return ProbeResult("error", str(value))
                self._discard()
                return ProbeResult(
                    "crashed", f"{path}: reading it took over {self.timeout_s:.0f} s; stopped"
                )
            except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
                self._process.join(5.0)
                code = self._process.exitcode
                self._discard()
                return ProbeResult(
                    "crashed",
                    f"{path}: the file is damaged: reading it crashed the HDF5 library "
                    f"({_describe_exit(code)}); nothing was loaded",
                )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
            if self._process is not None:
                self._process.join(2.0)
            self._discard()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
