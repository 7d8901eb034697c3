#!/usr/bin/env bash
# Training data of the v2 bundled-model configs (resources/training/v2/*.toml, issue 16): the
# v1 training slices with data diversity, plus the dipy coronal slice. Validation and test data
# are NOT rebuilt here: the v2 configs validate on data/sim/val and are evaluated on the v1 test
# splits (data/sim/test, data/sim_mni/test) exactly as the v1 models; run
# benchmarks/make_training_data.sh first for those.
# Sources (read from ../shared/data/anatomy):
#   Colin27 T1 (BSD-3, image (c) MNI): axial 20:78 and 96:160, the v1 training ranges only
#     (val 78:84, demo 84:88 and test 88:96 stay out; no other orientation of Colin27 is used,
#     since coronal or sagittal slices would cut through the test slab)
#   t1_coronal_slice.npy (dipy, BSD-3; one skull-stripped coronal T1 slice of another subject)
#   MNI ICBM152 2009a stays out of training: it is the out-of-distribution test.
# Variations (recorded per slice in each file's `simulation` attribute): flips, rotation +-10
# deg, scaling 0.9-1.1, gamma 0.7-1.4, SNR 20-60, background phase 0.5-pi rad, 4/8/12/16
# birdcage coils of radius 1.0/1.2/1.5 per file (4 slices per file).
# Output: data/sim_v2/train/*.h5 (122 Colin27 slices x REPEATS + 16 x REPEATS dipy copies:
# 276 slices, about 1 GB, at REPEATS=2).
set -euo pipefail
cd "$(dirname "$0")/.."
ANAT="${ANAT:-../shared/data/anatomy}"
OUT="${OUT:-data}"
REPEATS="${REPEATS:-2}"
diversity=(--flip --rotate 10 --scale 0.9,1.1 --gamma 0.7,1.4 --snr-range 20,60
  --phase-range 0.5,3.14159 --coil-counts 4,8,12,16 --coil-radii 1.0,1.2,1.5)
common=(--matrix 224x192 --slices-per-file 4 "${diversity[@]}")
mriviewer simulate "$ANAT/colin27_t1.nii.gz" "$OUT/sim_v2" --orientation axial "${common[@]}" \
  --repeats "$REPEATS" --seed 11 --split train_a:20:78 --split train_b:96:160
# one 2-D slice: many copies, each with its own draws
mriviewer simulate "$ANAT/t1_coronal_slice.npy" "$OUT/sim_v2" "${common[@]}" \
  --repeats $((16 * REPEATS)) --seed 12 --split train_c:0:1
mkdir -p "$OUT/sim_v2/train"
mv "$OUT"/sim_v2/train_?/*.h5 "$OUT/sim_v2/train/"
rmdir "$OUT"/sim_v2/train_?
