"""glibc malloc tuning (mriviewer.core.allocator): applied on import, opt-out, and the page
faults of a training step it exists to remove."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mriviewer.core import allocator

STEP = textwrap.dedent(
    """
    import json, resource, torch
    import mriviewer
    from mriviewer.core import allocator
    from mriviewer.core.models.unrolled import MoDL
    torch.set_num_threads(1); torch.manual_seed(0)
    C, H, W = 8, 128, 128
    maps = torch.randn(1, C, H, W, dtype=torch.complex64)
    mask = torch.zeros(1, H, W, dtype=torch.bool); mask[..., ::4] = True
    y = torch.randn(1, C, H, W, dtype=torch.complex64) * mask.unsqueeze(1)
    x = torch.randn(1, H, W, dtype=torch.complex64)
    m = MoDL(num_unrolls=2, features=8, depth=3, cg_iters=4)
    opt = torch.optim.Adam(m.parameters())
    def step():
        opt.zero_grad(); (m(y, maps, mask) - x).abs().mean().backward(); opt.step()
    step(); step()
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 3
    print(json.dumps({"applied": allocator.tune_malloc(), "faults": faults}))
    """
)

linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc only",
)


def _run(extra_env: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop(allocator.MALLOC_ENV, None)
    env.update(extra_env)
    out = subprocess.run(
        [sys.executable, "-c", STEP], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@linux_glibc
def test_tuned_malloc_removes_the_page_faults_of_a_training_step():
    tuned = _run({})
    # glibc's static default (mmap above 128 KiB; set explicitly, it also switches off glibc's
    # dynamic threshold, whose page faults vary from run to run: 0 to 24,000 per step)
    default = _run({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert tuned["applied"] is True
    assert default["applied"] is False
    # measured: tuned 1-200 minor faults per step, the static default thousands
    assert tuned["faults"] * 10 < default["faults"], (tuned, default)


@linux_glibc
def test_glibc_variables_set_by_the_user_are_respected_and_the_opt_out_works():
    assert _run({"MALLOC_TRIM_THRESHOLD_": "131072"})["applied"] is False
    assert _run({allocator.MALLOC_ENV: "default"})["applied"] is False


def test_description_names_the_settings():
    text = allocator.malloc_description()
    assert ("32 MiB" in text) == bool(allocator.tune_malloc())
