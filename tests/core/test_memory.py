"""Peak memory of a method in a long-lived process (the app's compute process)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mriviewer.core.memory import PeakRss, rss_mb

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and glibc")


@linux
def test_peak_counts_memory_the_process_already_held_once():
    # memory freed by earlier work stays with the allocator: an RSS delta would read ~0 here
    for _ in range(3):
        block = np.ones(20_000_000 // 8)
        del block
    probe = PeakRss()
    assert probe.kernel_peak
    block = np.ones(20_000_000 // 8)  # 20 MB, touched
    del block
    assert 15.0 < probe.update() < 200.0  # the peak outlives the array
    assert rss_mb() > 0


@linux
def test_peak_is_measured_from_the_start_level():
    big = np.ones(50_000_000 // 8)
    probe = PeakRss()  # 50 MB already held: not the method's
    small = np.ones(5_000_000 // 8)
    assert probe.update() < 40.0
    del big, small
