"""Draw the mriviewer application icon (SVG + PNG sizes) with matplotlib.

The icon: a k-space sampling pattern (1-D random lines, fully sampled centre) on the left half,
a reconstructed round "head" on the right half, on a dark rounded square.
Run: python packaging/make_icons.py  (writes resources/icons/mriviewer.svg and mriviewer-N.png)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle  # noqa: E402

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
OUT = Path(__file__).resolve().parents[1] / "resources" / "icons"


def draw(ax) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.add_patch(
        FancyBboxPatch(
            (0.03, 0.03),
            0.94,
            0.94,
            boxstyle="round,pad=0,rounding_size=0.18",
            facecolor="#14213d",
            edgecolor="none",
        )
    )
    rng = np.random.default_rng(7)
    cols = np.linspace(0.12, 0.42, 12)
    keep = rng.uniform(size=cols.size) < 0.45
    keep[4:8] = True
    for x, k in zip(cols, keep, strict=True):
        if k:
            ax.add_patch(Rectangle((x, 0.14), 0.018, 0.72, facecolor="#fca311", edgecolor="none"))
    ax.add_patch(Circle((0.7, 0.5), 0.21, facecolor="#e5e5e5", edgecolor="none"))
    ax.add_patch(Circle((0.7, 0.5), 0.15, facecolor="#8d99ae", edgecolor="none"))
    ax.add_patch(Circle((0.66, 0.55), 0.045, facecolor="#e5e5e5", edgecolor="none"))
    ax.add_patch(Circle((0.75, 0.44), 0.035, facecolor="#2b2d42", edgecolor="none"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(1, 1), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    draw(ax)
    fig.savefig(OUT / "mriviewer.svg", transparent=True)
    for size in SIZES:
        fig.savefig(OUT / f"mriviewer-{size}.png", dpi=size, transparent=True)
    plt.close(fig)
    print(f"wrote {OUT}/mriviewer.svg and {len(SIZES)} PNG sizes")


if __name__ == "__main__":
    main()
