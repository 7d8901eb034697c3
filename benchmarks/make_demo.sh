#!/usr/bin/env bash
# Rebuild the bundled demo case resources/demo/demo_brain.h5 from Colin27 (see resources/demo/README.md).
# Source: Debian package mricron-data (colin27 T1, BSD-3-Clause; image (c) MNI), available at
# ../shared/data/anatomy/colin27_t1.nii.gz beside the checkout, or via `apt-get download mricron-data`.
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE="${1:-../shared/data/anatomy/colin27_t1.nii.gz}"
mriviewer simulate "$SOURCE" resources/demo/demo_brain.h5 \
  --orientation axial --slices 86:88 --matrix 224x192 --coils 8 --coil-radius 1.2 --snr 40 --seed 0
