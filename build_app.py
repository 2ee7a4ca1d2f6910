"""Build ``Diffusion Desktop.app`` for macOS (Apple silicon). Not implemented yet.

When the window exists, this script will:

1. create a clean virtual environment from ``pyproject.toml`` (the pinned, tested versions; on a
   Mac torch 2.13.0 is the standard wheel with MPS);
2. compile the Qt translations in ``i18n/*.ts`` to ``.qm`` with ``pyside6-lrelease``;
3. freeze ``python -m desktop`` with PyInstaller (``--windowed``, arm64, bundle id
   ``app.diffusiondesktop``), adding ``resources/`` (model configs, tokenizer, icons) and the
   ``.qm`` files as data, so the app runs offline;
4. write ``Info.plist`` entries: document types for ``.safetensors`` (so files dropped on the Dock
   icon open in the app), ``NSHighResolutionCapable``, minimum macOS 13;
5. ad-hoc sign the bundle (or sign with a Developer ID when ``--identity`` is given) and build a
   ``.dmg`` into ``dist/``.

Until then it exits with status 2 and says so, rather than pretending to build something.
"""

from __future__ import annotations

import sys


def main() -> int:
    print(__doc__.strip(), file=sys.stderr)
    print("\nbuild_app.py: the macOS app bundle is not built yet (the window comes first).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
