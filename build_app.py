"""Build ``Diffusion Desktop.app`` for macOS (Apple silicon). Only the translations step exists yet.

When the window exists, this script will:

1. create a clean virtual environment from ``pyproject.toml`` (the pinned, tested versions; on a
   Mac torch 2.13.0 is the standard wheel with MPS);
2. compile the Qt translations in ``i18n/*.ts`` to ``.qm`` with ``pyside6-lrelease`` (done: see
   ``compile_translations``), together with Qt's own ``qtbase_zh_CN.qm``;
3. freeze ``python -m desktop`` with PyInstaller (``--windowed``, arm64, bundle id
   ``app.diffusiondesktop``), adding ``resources/`` (model configs, tokenizer, icons) and the
   ``.qm`` files as data (``DATA_FILES``), so the app runs offline;
4. write ``Info.plist`` entries: document types for ``.safetensors`` (so files dropped on the Dock
   icon open in the app), ``NSHighResolutionCapable``, minimum macOS 13;
5. ad-hoc sign the bundle (or sign with a Developer ID when ``--identity`` is given) and build a
   ``.dmg`` into ``dist/``.

Until then it compiles the translations, then exits with status 2 and says so, rather than
pretending to build something.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# (source in the tree, folder inside the bundle): desktop.ui.i18n.translations_dir() looks for
# the .qm files in <bundle>/i18n when frozen.
DATA_FILES = (("resources", "resources"), ("i18n/build", "i18n"))


def compile_translations() -> None:
    """Fresh .qm files into i18n/build (never committed; always rebuilt for a release)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "translations.py"), "check"], check=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "translations.py"), "compile", "--force"], check=True)


def main() -> int:
    compile_translations()
    print(__doc__.strip(), file=sys.stderr)
    print("\nbuild_app.py: the macOS app bundle is not built yet (the window comes first).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
