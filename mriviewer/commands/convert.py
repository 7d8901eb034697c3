"""``mriviewer convert IN OUT.h5``: any readable k-space file -> fastMRI-layout HDF5 (all slices).

The output holds ``kspace`` ``(slices, coils, H, W)``, an ISMRMRD header with the matrix sizes
and, for fully sampled input, ``reconstruction_rss`` (the source's own reference if it has one,
else the RSS of the k-space cropped to the recon matrix). Undersampled input (zero k-space
points) gets no reference: the zero-filled RSS would be no ground truth. Zero-padded phase-encode
columns (fastMRI knee) are outside the acquired band, not "unsampled": the sampled fraction is
counted inside the band, which the output records as ``padding_left`` / ``padding_right``
attributes (fastMRI's convention: the band is ``[padding_left, padding_right)``). Written
atomically.

A cine (2-D + time) input (``demo-cine``, a cine HDF5 file, BART with TIME > 1, ``.npy`` /
``.mat`` with ``--axes`` holding T) is written in the cine layout instead
(:func:`mriviewer.core.io.cine.write_cine`): ``kspace`` ``(slices, frames, coils, H, W)``, the
source's ``reconstruction_rss`` when it has one (else the RSS per frame for fully sampled input,
none for undersampled input), ``mask`` ``(frames, H, W)`` when the input has its own k-t
sampling (the file's mask, else the zeros :func:`mriviewer.core.cine.detect_kt_sampling`
finds; one mask for every slice), the recon matrix, and the source's attributes.
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
        help="convert any readable k-space file to fastMRI-layout HDF5 (cine: the cine layout)",
        description="Convert a k-space file (fastMRI/ISMRMRD HDF5, BART .cfl/.hdr, .npy/.npz, "
        ".mat, Siemens TWIX .dat, or 'demo') to a fastMRI-layout HDF5 file, all slices; a cine "
        "file ('demo-cine', BART with TIME, --axes with T) to the cine HDF5 layout.",
    )
    parser.add_argument("input", metavar="IN", help="k-space file to read (or 'demo', 'demo-cine')")
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


def convert_cine(volume: Any, output: str | Path) -> dict[str, Any]:
    """Write every slice of a :class:`~mriviewer.core.io.cine.CineVolume` to ``output`` in the
    cine layout (module docstring); returns what was written."""
    from mriviewer.core.cine import detect_kt_sampling
    from mriviewer.core.io.cine import write_cine

    output = Path(output)
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise KSpaceWriteError(
            f"a cine series converts to HDF5: the output must end in {' or '.join(OUTPUT_SUFFIXES)}",
            output,
        )
    kspace = np.stack([volume.read_kspace(k) for k in range(volume.num_slices)])
    sampling = [detect_kt_sampling(kspace[k], volume.mask) for k in range(volume.num_slices)]
    mask = volume.mask
    if mask is None and not all(s.fully_sampled for s in sampling):
        mask = sampling[0].pattern
        if any(not np.array_equal(s.pattern, mask) for s in sampling[1:]):
            raise KSpaceWriteError(
                "the cine slices are sampled differently and the cine layout holds one k-t "
                "mask: convert them one at a time",
                output,
            )
    reference = None
    if volume.has_reference:
        reference = np.stack([volume.read_reference(k) for k in range(volume.num_slices)])
    source_attrs = volume.header.get("attrs") or {}
    attrs = {k: v for k, v in source_attrs.items() if k not in ("dynamic", "frames", "max")}
    if volume.header.get("acquisition"):
        attrs["acquisition"] = str(volume.header["acquisition"])
    attrs.update(converted_from=str(volume.path), source_format=volume.format)
    write_cine(
        output,
        kspace,
        reference=reference,
        recon_matrix=volume.recon_matrix,
        mask=mask,
        attrs=attrs,
    )
    s, t, c, h, w = kspace.shape
    rate = float(np.mean([x.acceleration for x in sampling]))
    return {
        "output": str(output),
        "input": str(volume.path),
        "source_format": volume.format,
        "slices": s,
        "frames": t,
        "coils": c,
        "matrix": [h, w],
        "recon_matrix": list(volume.recon_matrix),
        "acceleration": rate,
        "mask": mask is not None,
        "reference": (
            "from source"
            if reference is not None
            else ("none (undersampled input)" if mask is not None else "RSS per frame")
        ),
    }


def run(args: argparse.Namespace) -> int:
    from mriviewer.core.io.cine import is_cine, open_cine

    if is_cine(args.input, args.axes):  # 2-D + time: the cine layout
        volume = open_cine(args.input, axes=args.axes, variable=args.variable)
        done = convert_cine(volume, args.output)
        h, w = done["matrix"]
        rh, rw = done["recon_matrix"]
        sampled = f"own k-t mask, R {done['acceleration']:.2f}" if done["mask"] else "fully sampled"
        print(
            f"wrote {done['output']}: cine HDF5, {done['slices']} slice(s) x {done['frames']} "
            f"frame(s) x {done['coils']} coil(s) x {h} x {w} k-space (recon matrix {rh} x {rw}, "
            f"{sampled}), reference: {done['reference']}; from {done['source_format']} file "
            f"{done['input']}"
        )
        return 0
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
