#!/usr/bin/env bash
# Pick the best variant of a model for this runner's GPU budget and fetch it, for CI.
#
#   MODEL=owner/name VRAM=24 CTX=16k MODEL_DIR=models/mixtral examples/ci-fetch.sh
#
# Caching: keep $MODEL_DIR between runs (e.g. actions/cache keyed on the picked variant); a re-run
# with a complete, verified directory transfers nothing. Fails (non-zero) on every error, with
# quantpick's own exit code: 4 nothing fits, 5 not found, 6 auth, 7 network, 8 integrity, 9 disk.
set -euo pipefail

: "${MODEL:?set MODEL=owner/name}"
VRAM=${VRAM:-24}
CTX=${CTX:-16k}
QUANTPICK=${QUANTPICK:-quantpick}

# stdout of `pick` is the variant name alone; the reasons go to stderr (into the CI log)
variant=$($QUANTPICK pick "$MODEL" --vram "$VRAM" --ctx "$CTX")
echo "picked $variant for ${VRAM} GiB at ${CTX}" >&2

MODEL_DIR=${MODEL_DIR:-models/${MODEL##*/}-$variant}
if [ -f "$MODEL_DIR/quantpick.json" ] && $QUANTPICK verify "$MODEL_DIR" >/dev/null; then
  echo "cache hit: $MODEL_DIR verified" >&2
else
  # `fetch` prints the directory last on stdout and never exits 0 with an incomplete download
  MODEL_DIR=$($QUANTPICK fetch "$MODEL:$variant" --local-dir "$MODEL_DIR" --quiet | tail -n 1)
fi
echo "$MODEL_DIR"
