#!/usr/bin/env bash
# Sets up .venv with the test tools on first use, then runs the whole test suite (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh dev >&2
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
exec .venv/bin/python -m pytest "$@"
