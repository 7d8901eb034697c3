"""The models shipped in resources/models load, match their cards and reconstruct the demo case
far better than zero-filled (the contract names: dense, gleam, pun-it; pgd in addition)."""

from __future__ import annotations

import numpy as np
import pytest

from mriviewer.core.checkpoints import describe_model, list_models
from mriviewer.core.compare import evaluate_image, get_method, prepare_from_volume
from mriviewer.core.io import open_kspace
from mriviewer.core.physics.masks import MaskSpec, make_mask

BUNDLED = {
    "dense": ("modl", "e2e"),
    "gleam": ("modl", "gleam"),
    "pun-it": ("modl", "e2e"),
    "pgd": ("pgd", "e2e"),
}


@pytest.fixture(scope="module")
def demo_problem():
    volume = open_kspace("demo")
    mask = make_mask(MaskSpec("random", 4.0, 0.08, seed=0), volume.matrix)
    return prepare_from_volume(volume, mask, slice_index=volume.num_slices // 2)


def test_bundled_models_are_listed_with_their_cards():
    listed = {m["name"]: m for m in list_models()}
    assert set(BUNDLED) <= set(listed)
    for name, (arch, strategy) in BUNDLED.items():
        info = describe_model(f"model:{name}")
        assert info["architecture"]["name"] == arch
        assert info["strategy"]["name"] == strategy
        card = info["card"]
        assert card["accelerations"] == [4.0] and card["mask"]["kind"] == "random"
        for split in ("train", "val"):
            assert ".." not in card["training_data"][split]["folder"]
    assert describe_model("model:pun-it")["density"] == pytest.approx(0.03, abs=0.005)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_reconstructs_the_demo(demo_problem, name):
    *_, zero = get_method("zero-filled").iterate(demo_problem)
    results = list(get_method(f"model:{name}").iterate(demo_problem))
    assert [r.iteration for r in results] == list(range(len(results)))
    final = results[-1].image
    assert final.shape == demo_problem.shape and np.all(np.isfinite(final))
    zero_psnr = evaluate_image(demo_problem, zero.image)["psnr"]
    assert evaluate_image(demo_problem, final)["psnr"] > zero_psnr + 4.0
