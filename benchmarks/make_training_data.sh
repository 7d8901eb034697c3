#!/usr/bin/env bash
# Rebuild the simulated training / validation / test data used by the bundled models (issue 7).
# Sources (read from ../shared/data/anatomy; also in Debian's mricron-data and nilearn):
#   Colin27 T1 (BSD-3, image (c) MNI)   -> train / val / test splits, disjoint axial slice ranges
#   MNI ICBM152 2009a T1 (same terms)   -> out-of-distribution test split (a different subject/source)
# Axial slices 84:88 of Colin27 are left out of every split (the demo case uses 86:88).
# Output: data/sim/{train_a,train_b,train_c,train_d,val,test}/*.h5 and data/sim_mni/test/*.h5
set -euo pipefail
cd "$(dirname "$0")/.."
ANAT="${ANAT:-../shared/data/anatomy}"
OUT="${OUT:-data}"
common=(--orientation axial --matrix 224x192 --coils 8 --coil-radius 1.2 --snr 40 --slices-per-file 4)
# Two noise/phase/coil-phase draws of the same training slices (seed 1 and 2) double the training set.
mriviewer simulate "$ANAT/colin27_t1.nii.gz" "$OUT/sim" "${common[@]}" --seed 1 \
  --split train_a:20:78 --split train_b:96:160 --split val:78:84 --split test:88:96
mriviewer simulate "$ANAT/colin27_t1.nii.gz" "$OUT/sim" "${common[@]}" --seed 2 \
  --split train_c:20:78 --split train_d:96:160
mriviewer simulate "$ANAT/mni152_2009a_t1.nii.gz" "$OUT/sim_mni" "${common[@]}" --seed 3 \
  --split test:70:82
# The trainer reads one folder per split: gather the four training ranges/draws into data/sim/train.
mkdir -p "$OUT/sim/train"
mv "$OUT"/sim/train_?/*.h5 "$OUT/sim/train/"
rmdir "$OUT"/sim/train_?
