#!/usr/bin/env bash
# The main job, offline: set up .venv, start the bundled loopback Hub with example repos, then
# `quantpick list` and `quantpick fetch --vram 24 --ctx 16k` against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/quantpick-demo.XXXXXX")
hub_pid=
cleanup() {
  [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

.venv/bin/python examples/make_hub.py "$work/hub" >/dev/null
.venv/bin/python -m quantpick.testing "$work/hub" >"$work/endpoint" 2>"$work/hub.log" &
hub_pid=$!
for _ in $(seq 100); do [ -s "$work/endpoint" ] && break; sleep 0.1; done
[ -s "$work/endpoint" ] || { echo "error: the example Hub did not start" >&2; cat "$work/hub.log" >&2; exit 1; }

export HF_ENDPOINT=$(head -n 1 "$work/endpoint") HF_HOME="$work/hf" HF_HUB_DISABLE_UPDATE_CHECK=1
qp=(.venv/bin/quantpick)
echo "\$ quantpick list demo/Mixtral-8x7B-Instruct-exl2 --vram 24 --ctx 16k"
"${qp[@]}" list demo/Mixtral-8x7B-Instruct-exl2 --vram 24 --ctx 16k
echo
echo "\$ quantpick fetch demo/Mixtral-8x7B-Instruct-exl2 --vram 24 --ctx 16k"
dir=$("${qp[@]}" fetch demo/Mixtral-8x7B-Instruct-exl2 --vram 24 --ctx 16k --local-dir "$work/model")
echo "$dir"
echo
echo "\$ quantpick verify $dir"
"${qp[@]}" verify "$dir"
