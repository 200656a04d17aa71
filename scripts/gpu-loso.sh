#!/usr/bin/env bash
# Step 2 of "Training on a GPU machine" (README), as one command for a machine lent for a few minutes: the served
# recipe's leave-one-source-out folds and full fit from a pack, side by side, then one archive per variant for the
# trip back. Run from the repository root on that machine:
#
#   scripts/gpu-loso.sh PACK OUT
#
# Settings (environment):
#   PYTHON    python3
#   WHEELS    a folder of wheels to install first (keras, optree, namex)
#   VARIANTS  "w2:--width 2.0"; several separated by ";"
#   FOLDS     "all forest-fire fire-dataset weather houses"
#   SEEDS     none: each variant's own seed; "1337 7" fits everything once per seed, in NAME-sSEED-FOLD
#   PARALLEL  every fit of the grid at once
#   MINUTES   7: no fit starts an epoch after that, and each keeps its best epoch so far; 7 leaves a 15-minute lease
#             time to start, install and send the results back
#   WEIGHTS   "all": the folds whose weights come back ("every" for all fits); a width-2.0 fit's weights pack to
#             about 2 MB, its scores to 0.2 MB
#
# What comes back is OUT/NAME.tgz, one archive per variant: every fit's scores, history, settings and log, and the
# weights of the WEIGHTS folds. Few files, each small, because a lent machine returns only a few (8 of at most 16 MiB).
# The fits themselves stay in OUT/fits: where everything under a folder is sent back, give a working folder as OUT
# and copy only OUT/*.tgz there (scripts/gpu-loso.sh PACK /tmp/grid && cp /tmp/grid/*.tgz "$BACK").
set -uo pipefail
if [ $# -ne 2 ]; then
  echo "usage: scripts/gpu-loso.sh PACK OUT" >&2
  exit 2
fi
PACK=$1 OUT=$2
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false  # fits share one GPU
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -n "${WHEELS:-}" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/firewatch-site "$WHEELS"/*.whl || exit 3
  export PYTHONPATH=/tmp/firewatch-site:$PYTHONPATH
fi
mkdir -p "$OUT" || exit 2

# Fail in seconds, not after the lease: Keras must import and fit one step on this machine's backend. Without
# TensorFlow, JAX is tried first, then PyTorch.
preflight() {
  "$PYTHON" - <<'PY'
import keras, numpy as np
print("keras", keras.__version__, "backend", keras.backend.backend(), flush=True)
m = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.DepthwiseConv2D(3), keras.layers.BatchNormalization(),
                      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid")])
m.compile("adam", "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
m.fit(np.zeros((64, 32, 32, 3)), np.r_[np.zeros(32), np.ones(32)], batch_size=32, verbose=0)
PY
}
if [ -z "${KERAS_BACKEND:-}" ] && ! "$PYTHON" -c "import tensorflow" 2>/dev/null; then
  export KERAS_BACKEND=jax
  preflight || { echo "JAX failed the preflight; trying PyTorch" >&2; export KERAS_BACKEND=torch; preflight || exit 4; }
else
  preflight || exit 4
fi

args=()
IFS=';' read -ra variants <<< "${VARIANTS:-w2:--width 2.0}"
for variant in "${variants[@]}"; do args+=(--variant "$variant"); done
read -ra folds <<< "${FOLDS:-all forest-fire fire-dataset weather houses}"
read -ra seeds <<< "${SEEDS:-}"
if [ ${#seeds[@]} -gt 0 ]; then args+=(--seeds "${seeds[@]}"); fi
# Every fit at once by default: under a deadline, a fit left waiting for a place would start too late to count.
fits_in_grid=$(( ${#variants[@]} * ${#folds[@]} * (${#seeds[@]} > 0 ? ${#seeds[@]} : 1) ))
"$PYTHON" -m training.accelerated grid "$PACK" --out "$OUT/fits" "${args[@]}" --folds "${folds[@]}" \
  --parallel "${PARALLEL:-$fits_in_grid}" --minutes "${MINUTES:-7}"
status=$?
# One archive per variant, weights only for the WEIGHTS folds (the fold scores are what leave-one-source-out needs).
read -ra keep <<< "${WEIGHTS:-all}"
tags=(""); if [ ${#seeds[@]} -gt 0 ]; then tags=(); for seed in "${seeds[@]}"; do tags+=("-s$seed"); done; fi
for variant in "${variants[@]}"; do
  name=${variant%%:*} fits=() skip=()
  for fold in "${folds[@]}"; do
    for tag in "${tags[@]}"; do
      fit=$name$tag-${fold//\//_}  # the folder name the grid gives this fit
      [ -d "$OUT/fits/$fit" ] || continue
      fits+=("$fit")
      wanted=no
      for k in "${keep[@]}"; do if [ "$k" = every ] || [ "$k" = "$fold" ]; then wanted=yes; fi; done
      [ $wanted = yes ] || skip+=(--exclude "$fit/model.weights.h5")
    done
  done
  [ ${#fits[@]} -gt 0 ] || continue
  tar czf "$OUT/$name.tgz" -C "$OUT/fits" "${skip[@]}" "${fits[@]}" || status=5
done
ls -la "$OUT"
exit $status
