#!/usr/bin/env bash
# Creates or updates .venv with the pinned dependencies. Idempotent and quick when nothing changed.
#   scripts/bootstrap.sh          runtime dependencies
#   scripts/bootstrap.sh dev      runtime + test tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
venv=.venv

if [ ! -x "$venv/bin/python" ]; then
  echo "Creating $venv with $($python --version)..." >&2
  "$python" -m venv "$venv"
fi

stamp="$venv/.installed-$(cat pyproject.toml | sha256sum 2>/dev/null | cut -c1-16 || shasum -a 256 pyproject.toml | cut -c1-16)-${extras:-runtime}"
if [ -f "$stamp" ] || { [ -z "$extras" ] && [ -f "${stamp%-runtime}-dev" ]; }; then
  exit 0  # up to date (a dev install includes the runtime)
fi

pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first, pinned: on Linux the machine's local CPU wheel satisfies it (no CUDA downloads);
# on a Mac it is the regular PyPI wheel, which has MPS. Later requirements then find it installed.
torch_pin=$(grep -oE '"torch==[^"]+"' pyproject.toml | tr -d '"')
echo "Installing $torch_pin..." >&2
"${pip[@]}" "$torch_pin"
echo "Installing Diffusion Desktop${extras:+ [$extras]}..." >&2
if [ -n "$extras" ]; then
  "${pip[@]}" -e ".[$extras]"
else
  "${pip[@]}" -e .
fi
rm -f "$venv"/.installed-*
touch "$stamp"
