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

    The counter knows the app's embeddings (:meth:`set_token_context`: the model folders and the
    checkpoint's family), so an embedding's name counts as its vectors, as in A1111. The folders
    are listed again after each change the window reports (files added or removed in them, another
    checkpoint), on the counter's thread, and not otherwise; loaded embedding files are kept
    while they stay the same.
    """

    def __init__(self) -> None:
        self._import_lock = threading.Lock()
        self._imported = False
        self._tokenizer: Any = None
        # The GUI thread takes only the context lock, briefly: it never waits for a folder listing.
        self._context_lock = threading.Lock()
        self._model_roots: tuple[Path, ...] = ()
        self._family = ""
        self._context_version = 0
        self._listing_lock = threading.Lock()  # counting threads, one listing at a time
        self._listed_version = -1
        self._embedding_files: dict[str, Path] = {}
        self._embedding_library: Any = None  # EmbeddingLibrary, None without embedding files

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

    def set_token_context(self, model_roots: list[str] | list[Path], family: str) -> None:
        """The model folders and the selected checkpoint's family ("sd1", "sdxl"...); called in the GUI thread.

        Cheap (no listing, no torch): the folders are listed again on the next count.
        """
        roots = tuple(Path(root) for root in model_roots)
        with self._context_lock:
            self._model_roots, self._family = roots, family
            self._context_version += 1

    def count_tokens(self, text: str) -> tuple[int, int]:
        """A1111's "37/75" counter with the bundled CLIP tokenizer, loaded on first use (off the GUI thread).

        An embedding's name counts as its vectors when the file fits the checkpoint's family
        (A1111 counts the embeddings loaded for the current model); any other name is text.
        """
        self.import_engine()
        from desktop.engine.conditioning import count_tokens

        with self._import_lock:
            if self._tokenizer is None:
                from desktop.engine.loading import load_tokenizers
                from desktop.library.taxonomy import ModelFamily

                self._tokenizer = load_tokenizers(ModelFamily.SD1)[0]  # SDXL's first tokenizer is the same CLIP vocabulary
            tokenizer = self._tokenizer
        length = count_tokens(text, tokenizer, embeddings=self._prompt_embeddings())
        return length.tokens, length.limit

    def _prompt_embeddings(self) -> Any:
        """A PromptEmbeddings over the app's embedding files for one count (None when there are none)."""
        from desktop.engine.networks.activation import NetworkFiles
        from desktop.engine.networks.embeddings import FAMILY_WIDTHS, EmbeddingLibrary, PromptEmbeddings
        from desktop.library.taxonomy import ModelFamily

        with self._listing_lock:
            with self._context_lock:
                roots, family, version = self._model_roots, self._family, self._context_version
            if version != self._listed_version:
                files = NetworkFiles.scan(roots).embeddings  # the names generation will find
                if files != self._embedding_files:
                    # A new library only when files came or went: loaded vectors and the name index stay.
                    self._embedding_library = EmbeddingLibrary(files) if files else None
                    self._embedding_files = files
                self._listed_version = version
            library = self._embedding_library
        if library is None:
            return None
        try:
            widths = FAMILY_WIDTHS.get(ModelFamily(family))
        except ValueError:
            widths = None
        return PromptEmbeddings(library, widths)  # widths None (unknown family): any readable embedding counts


def training_command(config_path: Path) -> list[str]:
    """The training child's command line: this Python with ``-m desktop``, or the frozen app itself."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "train", str(config_path), "--events"]
    return [sys.executable, "-m", "desktop", "train", str(config_path), "--events"]


def create_window(paths, store, launcher: EngineLauncher):  # noqa: ANN001 - AppPaths, SettingsStore (Qt: imported late)
    """The main window with the launcher's engine and token counter, the counter following the window's models."""
    from desktop.training.dataset_summary import summarize_dataset
    from desktop.ui.main_window import MainWindow, TrainingSupport

    training = TrainingSupport(command_for=training_command, scan_dataset=summarize_dataset)
    window = MainWindow(paths, store, launcher.create_engine, count_tokens=launcher.count_tokens, training=training)
    # The window listed its folders while it was built, before this connection: tell the launcher
    # now; prompt counts start from the event loop, after this.
    launcher.set_token_context([str(root) for root in window.model_roots()], window.parameters.family())
    window.token_context_changed.connect(launcher.set_token_context)
    return window


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    from PySide6.QtCore import QCoreApplication, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.core import settings as keys
    from desktop.ui.i18n import apply_language, translations_dir
    from desktop.ui.file_open import FileOpenForwarder
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
    window = create_window(paths, store, launcher)
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
