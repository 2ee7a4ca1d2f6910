#!/usr/bin/env bash
# Sets up .venv on first use, then runs Diffusion Desktop: ./run.sh generate --model ... --prompt ...
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh >&2
.venv/bin/python scripts/translations.py compile >/dev/null  # the interface translations; skipped when up to date
exec .venv/bin/python -m desktop "$@"
