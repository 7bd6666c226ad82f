#!/usr/bin/env bash
# Set up .venv, then run the linters, the type checker and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_DISABLE_UPDATE_CHECK=1 HF_HUB_DISABLE_TELEMETRY=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# most tests wait on a loopback server or a child process, not the CPU: three workers halve the
# wall time on two cores (QUANTPICK_TEST_WORKERS=0 runs them in one process)
.venv/bin/pytest -n "${QUANTPICK_TEST_WORKERS:-3}" "$@"
