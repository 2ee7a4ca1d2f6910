#!/usr/bin/env bash
# Sets up .venv with the test tools on first use, then runs the whole test suite (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh dev >&2
# The interface translations (.qm) the app loads from i18n/build; skipped when up to date.
.venv/bin/python scripts/translations.py compile >&2
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
exec .venv/bin/python -m pytest "$@"
