"""``mriviewer convert IN OUT.h5``: any readable k-space file -> fastMRI-layout HDF5 (all slices).

The output holds ``kspace`` ``(slices, coils, H, W)``, an ISMRMRD header with the matrix sizes
and, for fully sampled input, ``reconstruction_rss`` (the source's own reference if it has one,
else the RSS of the k-space cropped to the recon matrix). Undersampled input (zero k-space
points) gets no reference: the zero-filled RSS would be no ground truth. Zero-padded phase-encode
columns (fastMRI knee) are outside the acquired band, not "unsampled": the sampled fraction is
counted inside the band, which the output records as ``padding_left`` / ``padding_right``
attributes (fastMRI's convention: the band is ``[padding_left, padding_right)``). Written
atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.commands.common import add_reader_arguments, reader_options
from mriviewer.core.errors import KSpaceWriteError
from mriviewer.core.io import open_kspace, write_fastmri
from mriviewer.core.io.base import KSpaceVolume
from mriviewer.core.physics.band import acquired_band

OUTPUT_SUFFIXES = (".h5", ".hdf5")
# Below this fraction of non-zero k-space points a file counts as undersampled.
FULLY_SAMPLED_FRACTION = 0.95


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "convert",
        help="convert any readable k-space file to fastMRI-layout HDF5",
        description="Convert a k-space file (fastMRI/ISMRMRD HDF5, BART .cfl/.hdr, .npy/.npz, "
        ".mat, Siemens TWIX .dat, or 'demo') to a fastMRI-layout HDF5 file, all slices.",
    )
    parser.add_argument("input", metavar="IN", help="k-space file to read (or 'demo')")
    parser.add_argument("output", metavar="OUT.h5", help="fastMRI HDF5 file to write")
    add_reader_arguments(parser)
    parser.set_defaults(func=run)


def sampled_fraction(kspace: np.ndarray) -> float:
    """Fraction of ``(..., C, H, W)`` k-space points that are non-zero in some coil."""
    return float(np.mean(np.any(kspace != 0, axis=-3)))


def convert_volume(volume: KSpaceVolume, output: str | Path) -> dict[str, Any]:
    """Write every slice of ``volume`` to ``output`` (fastMRI HDF5); returns what was written."""
    output = Path(output)
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise KSpaceWriteError(
            f"output must be an HDF5 file ending in {' or '.join(OUTPUT_SUFFIXES)}", output
        )
    kspace = np.stack([volume.read_kspace(k) for k in range(volume.num_slices)])
    band = acquired_band(kspace.reshape(-1, *kspace.shape[-2:]), volume.header)
    fraction = sampled_fraction(kspace[..., band.start : band.stop])
    fully_sampled = fraction >= FULLY_SAMPLED_FRACTION
    reference = None
    if volume.has_reference:
        reference = np.stack([volume.read_reference(k) for k in range(volume.num_slices)])
    attrs = {
        "acquisition": str(volume.header.get("acquisition") or "unknown"),
        "converted_from": str(volume.path),
        "source_format": volume.format,
        "sampled_fraction": round(fraction, 4),
        "prewhitened": volume.whitened,
    }
    if not band.is_full:
        attrs.update(padding_left=band.start, padding_right=band.stop)
    with_reference = reference is not None or fully_sampled
    write_fastmri(
        output,
        kspace,
        reference=reference,
        recon_matrix=volume.recon_matrix,
        attrs=attrs,
        with_reference=with_reference,
    )
    s, c, h, w = kspace.shape
    return {
        "output": str(output),
        "input": str(volume.path),
        "source_format": volume.format,
        "slices": s,
        "coils": c,
        "matrix": [h, w],
        "recon_matrix": list(volume.recon_matrix),
        "sampled_fraction": round(fraction, 4),
        "reference": (
            "from source"
            if reference is not None
            else ("RSS of the k-space" if with_reference else "none (undersampled input)")
        ),
    }


def run(args: argparse.Namespace) -> int:
    volume = open_kspace(args.input, **reader_options(args))
    done = convert_volume(volume, args.output)
    h, w = done["matrix"]
    rh, rw = done["recon_matrix"]
    print(
        f"wrote {done['output']}: fastMRI HDF5, {done['slices']} slice(s) x {done['coils']} "
        f"coil(s) x {h} x {w} k-space (recon matrix {rh} x {rw}, "
        f"{100 * done['sampled_fraction']:.1f}% sampled), reference: {done['reference']}; "
        f"from {done['source_format']} file {done['input']}"
    )
    return 0
