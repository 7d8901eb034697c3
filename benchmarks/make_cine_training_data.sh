#!/usr/bin/env bash
# Simulated cine (2-D + time) training / validation / test series for the cine configs in
# resources/training/cine/ (issue 19). Colin27 T1 axial slices, one cine series per slice:
# 64 x 64, 4 coils, 12 frames, SNR 40 (the demo-cine settings). Slices 84:88 stay out of every
# split (demo-cine is slice 86).
# Output: data/sim_cine/{train,val,test}/colin27_t1_cine_*.h5
set -euo pipefail
cd "$(dirname "$0")/.."
ANAT="${ANAT:-../shared/data/anatomy}"
OUT="${OUT:-data}"
mriviewer simulate "$ANAT/colin27_t1.nii.gz" "$OUT/sim_cine" --dynamic --orientation axial \
  --matrix 64x64 --coils 4 --frames 12 --snr 40 --seed 1 \
  --split train:20:78 --split val:78:84 --split test:88:96
