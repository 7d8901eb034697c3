"""Image-space helpers shared by readers, the comparison stream, metrics and training."""

from __future__ import annotations

import numpy as np


def center_crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre-crop the last two axes of ``image`` to ``shape`` (no-op where already smaller).

    fastMRI's rule (``fastmri.data.transforms.center_crop``): the crop starts at
    ``(size - crop) // 2``. Returns a view of ``image``; any dtype and leading axes."""
    h, w = image.shape[-2:]
    ch, cw = min(shape[0], h), min(shape[1], w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[..., top : top + ch, left : left + cw]
