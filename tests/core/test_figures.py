"""Publication figures from arrays (headless matplotlib) with JSON sidecars."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mriviewer.core.errors import MriViewerError
from mriviewer.core.figures import (
    FigureCurve,
    FigurePane,
    FigureSpec,
    render_figure,
    save_figure,
    sha256_file,
    sidecar_path,
)


def _spec(errors: bool = False) -> FigureSpec:
    rng = np.random.default_rng(0)
    ref = rng.random((24, 20)).astype(np.float32)
    panes = [FigurePane("reference", ref)]
    for name in ("a", "b"):
        img = ref + 0.1 * rng.random(ref.shape)
        panes.append(FigurePane(name, img, np.abs(img - ref) if errors else None))
    curves = [FigureCurve("b", [0, 1, 2], {"psnr": [20.0, 25.0, 27.0], "ssim": [0.5, 0.7, 0.8]})]
    return FigureSpec(
        panes=panes,
        levels=(0.1, 0.9),
        curves=curves,
        current_iteration=1,
        error_levels=(0.0, 0.1) if errors else None,
        note="test note",
    )


@pytest.mark.parametrize("suffix,magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_save_figure_formats_and_sidecar(tmp_path, suffix, magic):
    out = save_figure(_spec(errors=True), tmp_path / f"f.{suffix}", sidecar={"slice": 3}, dpi=60)
    assert out.read_bytes().startswith(magic)
    side = json.loads(sidecar_path(out).read_text())
    assert side["slice"] == 3 and side["levels"] == [0.1, 0.9]
    assert side["figure"]["sha256"] == sha256_file(out)


def test_figure_uses_the_given_levels_and_colormap():
    fig = render_figure(_spec())
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 3
    assert all(im.get_clim() == (0.1, 0.9) and im.get_cmap().name == "gray" for im in images)
    lines = [ax for ax in fig.axes if ax.get_lines()]
    assert len(lines) == 2  # PSNR and SSIM axes, each with the curve and the iteration marker


def test_bad_requests_raise_project_errors(tmp_path):
    with pytest.raises(MriViewerError, match="unsupported figure format"):
        save_figure(_spec(), tmp_path / "f.bmp")
    assert not (tmp_path / "f.bmp").exists()
    with pytest.raises(MriViewerError, match="no image panes"):
        render_figure(FigureSpec(panes=[], levels=(0, 1)))
