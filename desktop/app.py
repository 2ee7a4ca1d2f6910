"""The composition root: QApplication, app folders, settings, the main window and its engine thread.

Only this module knows both sides: the UI (Qt, no torch) and the engine (torch, no Qt). It hands
the window factories that import the engine lazily, inside the engine thread, so the window is
on screen before torch starts loading.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

APP_NAME = "Diffusion Desktop"


def default_paths():
    """The app's files in the platform's standard locations, never inside the app bundle."""
    from PySide6.QtCore import QStandardPaths

    from desktop.core.paths import default_models_dir
    from desktop.ui.main_window import AppPaths

    data = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
    config = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppConfigLocation))
    pictures = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation) or Path.home())
    frozen = getattr(sys, "frozen", False)
    return AppPaths(
        settings_file=config / "settings.ini",
        queue_file=data / "queue.json",
        styles_file=data / "styles.csv",
        default_output_dir=pictures / APP_NAME,
        # From a source checkout the repository's models/ folder (README); in the .app, Application Support.
        models_dir=data / "models" if frozen else default_models_dir(),
    )


def create_engine(options: dict[str, Any]):
    """Runs in the engine thread: the first torch import happens here."""
    from desktop.engine.service import EngineOptions, EngineService

    return EngineService(EngineOptions(**options))


class TokenCounter:
    """A1111's "37/75" counter with the bundled CLIP tokenizer, loaded on first use (off the GUI thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokenizer: Any = None

    def __call__(self, text: str) -> tuple[int, int]:
        from desktop.engine.conditioning import count_tokens

        with self._lock:
            if self._tokenizer is None:
                from desktop.engine.loading import load_tokenizers
                from desktop.library.taxonomy import ModelFamily

                self._tokenizer = load_tokenizers(ModelFamily.SD1)[0]
            tokenizer = self._tokenizer
        length = count_tokens(text, tokenizer)
        return length.tokens, length.limit


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    from PySide6.QtCore import QCoreApplication, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.ui.main_window import MainWindow
    from desktop.ui.settings_store import SettingsStore

    QCoreApplication.setOrganizationName(APP_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    paths = default_paths()
    store = SettingsStore(paths.settings_file)
    window = MainWindow(paths, store, create_engine, count_tokens=TokenCounter())
    window.show()
    if "--time-to-window" in (argv or sys.argv):  # measured by the tests: print, then leave
        app.processEvents()
        print(f"window shown after {time.perf_counter() - started:.3f} s; torch loaded: {'torch' in sys.modules}", flush=True)
        window.close()
        return 0
    QTimer.singleShot(200, window.start_engine)
    return app.exec()
