"""The composition root: QApplication, app folders, settings, translators, the main window and its engine thread.

Only this module knows both sides: the UI (Qt, no torch) and the engine (torch, no Qt). It hands
the window factories that import the engine lazily, inside the engine thread, so the window is
on screen before torch starts loading.
"""

from __future__ import annotations

import gc
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


class EngineLauncher:
    """Builds the engine for the engine thread and counts prompt tokens for the editors.

    torch, diffusers and transformers are imported by one thread at a time: transformers' lazy
    modules fail ("cannot import name ...") when two threads import them for the first time at
    once, and here the engine thread and the token counter's pool thread both would.
    """

    def __init__(self) -> None:
        self._import_lock = threading.Lock()
        self._imported = False
        self._tokenizer: Any = None

    def import_engine(self) -> None:
        with self._import_lock:
            if self._imported:
                return
            import desktop.engine.conditioning  # noqa: F401
            import desktop.engine.txt2img  # noqa: F401
            from desktop.engine.loading import import_model_classes

            import_model_classes()
            # Everything imported so far lives as long as the app: keep it out of the garbage
            # collector's full passes, which otherwise hold the GIL (and freeze the window) for
            # longer the more the engine has imported.
            gc.freeze()
            self._imported = True

    def create_engine(self, options: dict[str, Any]):
        """Runs in the engine thread: the first torch import happens here."""
        self.import_engine()
        from desktop.engine.service import EngineOptions, EngineService

        return EngineService(EngineOptions(**options))

    def count_tokens(self, text: str) -> tuple[int, int]:
        """A1111's "37/75" counter with the bundled CLIP tokenizer, loaded on first use (off the GUI thread)."""
        self.import_engine()
        from desktop.engine.conditioning import count_tokens

        with self._import_lock:
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

    from desktop.core import settings as keys
    from desktop.ui.i18n import apply_language, translations_dir
    from desktop.ui.file_open import FileOpenForwarder
    from desktop.ui.main_window import MainWindow
    from desktop.ui.settings_store import SettingsStore

    QCoreApplication.setOrganizationName(APP_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    paths = default_paths()
    store = SettingsStore(paths.settings_file)
    # Before the window exists, so it is built in the right language. Preferences switches later
    # languages itself (the same call), and every open window follows.
    language_warnings = apply_language(app, store.get(keys.LANGUAGE), translations_dir())
    opened_files = FileOpenForwarder(app)  # Dock drops and "Open With" can arrive before the window exists
    app.installEventFilter(opened_files)
    launcher = EngineLauncher()
    window = MainWindow(paths, store, launcher.create_engine, count_tokens=launcher.count_tokens)
    opened_files.set_target(window.install_dropped)
    if language_warnings:
        window.show_error("\n".join(language_warnings))
    window.show()
    if "--time-to-window" in (argv or sys.argv):  # measured by the tests: print, then leave
        app.processEvents()
        print(f"window shown after {time.perf_counter() - started:.3f} s; torch loaded: {'torch' in sys.modules}", flush=True)
        window.close()
        return 0
    QTimer.singleShot(200, window.start_engine)
    return app.exec()
