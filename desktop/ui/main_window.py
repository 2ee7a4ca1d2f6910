"""The main window: prompt editors and parameters on the left, the result on the right, panes for
models, the gallery and the queue, and a Mac menu bar. The engine runs on its own QThread."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (
    QT_TRANSLATE_NOOP,
    QEvent,
    QFileSystemWatcher,
    QObject,
    QRunnable,
    Qt,
    QThread,
    QThreadPool,
    QTimer,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core import settings as keys
from desktop.core.cancel import Cancelled, CancelToken
from desktop.core.errors import DesktopError, InvalidRequest
from desktop.core.events import ImageSaved, JobReport, PreviewImage, StepProgress
from desktop.core.requests import GenerationRequest
from desktop.core.reuse import reuse_parameters
from desktop.library.catalogue_entry import CatalogueEntry
from desktop.library.gallery_store import GalleryStore
from desktop.library.install import Installed, install_model
from desktop.library.model_folders import FOLDERS, list_models
from desktop.library.probe import PICKLE_SUFFIXES
from desktop.library.safetensors_file import PARTIAL_DOWNLOAD_SUFFIXES
from desktop.library.sidecars import resolve_vae_name
from desktop.library.styles import Style, apply_style, read_styles, write_styles
from desktop.ui.catalogue_worker import CatalogueWorker
from desktop.ui.engine_worker import Engine, EngineWorker
from desktop.ui.image_view import ImageView, preview_to_image
from desktop.ui.gallery import GalleryPane
from desktop.ui.gallery_worker import GalleryWorker
from desktop.ui.job_queue import RUNNING, JobQueue
from desktop.ui.model_browser import ModelBrowser
from desktop.ui.parameters import ParametersPanel
from desktop.ui.png_info import show_png_info
from desktop.ui.preferences import PreferencesDialog
from desktop.ui.prompt_editor import PromptEditor
from desktop.ui.settings_store import SettingsStore
from desktop.ui.training_dataset_view import ScanDataset
from desktop.ui.training_process import CommandFor
from desktop.ui.training_window import TrainingWindow

TokenCounter = Callable[[str], tuple[int, int]]


@dataclass(frozen=True)
class TrainingSupport:
    """What the training window needs from the app: the child's command line and the dataset scan."""

    command_for: CommandFor
    scan_dataset: ScanDataset


@dataclass(frozen=True)
class AppPaths:
    """Where the app keeps its files (QStandardPaths locations in the app; temporary folders in tests)."""

    settings_file: Path
    queue_file: Path
    styles_file: Path
    default_output_dir: Path
    models_dir: Path  # the app's own A1111-layout models folder
    catalogue_file: Path | None = None  # the model catalogue (SQLite); beside the settings when None

    def catalogue(self) -> Path:
        return self.catalogue_file or self.settings_file.with_name("models.sqlite")

    def gallery_index(self) -> Path:
        return self.settings_file.with_name("gallery.sqlite")

    def thumbnails(self) -> Path:
        return self.settings_file.parent / "thumbnails"


class MainWindow(QMainWindow):
    engine_options_changed = Signal(dict)  # to the worker (queued): output_dir, device, precision...
    warm_up_engine = Signal()
    job_done = Signal(str, object)  # job id, JobReport: after the window has shown the outcome
    engine_ready = Signal()  # the engine thread has loaded torch and the engine
    shutdown_requested = Signal()
    catalogue_refresh_requested = Signal(list)  # model roots, to the catalogue thread
    catalogue_shutdown_requested = Signal()
    gallery_reconcile_requested = Signal(list)  # output folders, to the gallery thread
    gallery_add_requested = Signal(str)  # a just-saved image
    gallery_shutdown_requested = Signal()
    unload_engine_requested = Signal()  # to the worker: free the models before a training
    preload_requested = Signal(object)  # to the worker: a GenerationRequest whose checkpoint to load again
    models_refreshed = Signal()  # the browser shows the catalogue's latest scan
    # Model roots (list of str) and the checkpoint's family ("sd1", "sdxl"...), sent (directly, in the
    # GUI thread) just before the prompts' tokens are counted again: embeddings count as their vectors.
    token_context_changed = Signal(list, str)

    def __init__(
        self,
        paths: AppPaths,
        store: SettingsStore,
        engine_factory: Callable[[dict], Engine],
        *,
        count_tokens: TokenCounter | None = None,
        training: TrainingSupport | None = None,
    ) -> None:
        super().__init__()
        self.paths = paths
        self._training = training
        self.training_window: TrainingWindow | None = None
        self._queue_paused_before_training = False
        self._quitting = False
        self.store = store
        self.setObjectName("MainWindow")
        self.setAcceptDrops(True)
        self.setUnifiedTitleAndToolBarOnMac(True)
        self._installing: list[CancelToken] = []
        self._install_pool = QThreadPool(self)
        self._install_pool.setMaxThreadCount(1)  # one copy at a time: parallel copies to one disk are slower
        self._install_count = 0
        self._select_after_refresh: Path | None = None
        self._count_tokens = count_tokens

        # engine thread
        self.engine_thread = QThread(self)
        self.engine_thread.setObjectName("EngineThread")
        self.worker = EngineWorker(engine_factory)
        self.worker.moveToThread(self.engine_thread)
        self.queue = JobQueue(paths.queue_file, self)
        self.catalogue_thread = QThread(self)
        self.catalogue_thread.setObjectName("CatalogueThread")
        self.catalogue_worker = CatalogueWorker(paths.catalogue())
        self.catalogue_worker.moveToThread(self.catalogue_thread)
        self.model_watcher = QFileSystemWatcher(self)
        self.gallery_thread = QThread(self)
        self.gallery_thread.setObjectName("GalleryThread")
        self.gallery_worker: GalleryWorker | None = None
        self._gallery_problem = ""
        try:
            self.gallery_worker = GalleryWorker(GalleryStore(paths.gallery_index(), paths.thumbnails()))
            self.gallery_worker.moveToThread(self.gallery_thread)
        except DesktopError as error:  # e.g. an index written by a newer version: refused, never overwritten
            self._gallery_problem = str(error)
        self._watch_timer = QTimer(self)
        self._watch_timer.setSingleShot(True)
        self._watch_timer.setInterval(800)  # a copy in Finder changes a folder many times: refresh once
        self._token_context_timer = QTimer(self)  # a refresh changes the checkpoint too: recount once
        self._token_context_timer.setSingleShot(True)
        self._token_context_timer.setInterval(0)

        self._build_widgets(count_tokens)
        self._build_docks()
        self._build_menus()
        self._connect()
        self.retranslate()
        self._restore()
        self.catalogue_thread.start()
        if self.gallery_worker is not None:
            self.gallery_thread.start()
            self.gallery.set_store(self.gallery_worker.store)
            self.reconcile_gallery()
        elif self._gallery_problem:
            self.show_error(self._gallery_problem)
        self.refresh_models()
        # The editors count their restored text by themselves; a recount now would start importing
        # torch before the window is on screen. (The app gives the counter its context directly.)
        self._token_context_timer.stop()
        self.engine_thread.start()
        self._apply_engine_options()

    def start_engine(self) -> None:
        """Import torch in the engine thread now, while the user is still typing."""
        self.warm_up_engine.emit()

    # --- construction ----------------------------------------------------------------------------

    def _build_widgets(self, count_tokens: TokenCounter | None) -> None:
        self.prompt = PromptEditor(count_tokens=count_tokens)
        self.negative_prompt = PromptEditor(count_tokens=count_tokens)
        self.prompt.setObjectName("prompt")
        self.negative_prompt.setObjectName("negative_prompt")
        self.styles = QComboBox()
        self.styles.setMinimumContentsLength(12)
        self.apply_style_button = QToolButton()
        self.save_style_button = QToolButton()
        self.generate_button = QPushButton()
        self.generate_button.setObjectName("generate")
        self.generate_button.setDefault(True)
        self.generate_button.setMinimumHeight(44)
        font = self.generate_button.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.generate_button.setFont(font)
        self.cancel_button = QPushButton()
        self.skip_button = QPushButton()
        self.forever_box = QCheckBox()
        self.parameters = ParametersPanel()

        self.prompt_label, self.negative_label, self.styles_label = QLabel(), QLabel(), QLabel()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.prompt_label)
        left_layout.addWidget(self.prompt, 3)
        left_layout.addWidget(self.negative_label)
        left_layout.addWidget(self.negative_prompt, 2)
        self.prompt.setMinimumHeight(90)
        self.negative_prompt.setMinimumHeight(60)
        styles_row = QHBoxLayout()
        styles_row.addWidget(self.styles_label)
        styles_row.addWidget(self.styles, 1)
        styles_row.addWidget(self.apply_style_button)
        styles_row.addWidget(self.save_style_button)
        left_layout.addLayout(styles_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 3)
        buttons.addWidget(self.skip_button, 1)
        buttons.addWidget(self.cancel_button, 1)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.forever_box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.parameters)
        left_layout.addWidget(scroll, 6)
        left.setMinimumWidth(400)

        # right: welcome page or result page
        self.image_view = ImageView()
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(8)
        self.progress_label = QLabel()
        self.progress_label.setObjectName("progress_label")
        self.error_banner = QLabel()
        self.error_banner.setObjectName("error_banner")
        self.error_banner.setWordWrap(True)
        self.error_banner.setTextFormat(Qt.TextFormat.PlainText)  # messages may quote hostile file names
        self.error_banner.setStyleSheet(
            "QLabel#error_banner { background: rgba(220, 60, 50, 0.14); border: 1px solid rgba(220, 60, 50, 0.5);"
            " border-radius: 6px; padding: 8px; }"
        )
        self.error_banner.hide()
        result_page = QWidget()
        result_layout = QVBoxLayout(result_page)
        result_layout.setContentsMargins(0, 0, 0, 0)
        result_layout.addWidget(self.image_view, 1)
        result_layout.addWidget(self.progress_bar)
        result_layout.addWidget(self.progress_label)

        self.welcome = QLabel()
        self.welcome.setObjectName("welcome")
        self.welcome.setWordWrap(True)
        self.welcome.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.welcome.setTextFormat(Qt.TextFormat.PlainText)
        self.welcome.setMargin(40)
        self.open_models_button = QPushButton()
        welcome_page = QWidget()
        welcome_layout = QVBoxLayout(welcome_page)
        welcome_layout.addStretch(1)
        welcome_layout.addWidget(self.welcome)
        welcome_layout.addWidget(self.open_models_button, 0, Qt.AlignmentFlag.AlignHCenter)
        welcome_layout.addStretch(1)

        self.pages = QStackedWidget()
        self.pages.addWidget(welcome_page)
        self.pages.addWidget(result_page)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("main_splitter")
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.error_banner)  # above both pages: errors show on the welcome page too
        right_layout.addWidget(self.pages, 1)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([460, 700])
        self.setCentralWidget(self.splitter)

        # model installs: progress and Cancel in the status bar while files are being copied
        self.install_label = QLabel()
        self.install_progress = QProgressBar()
        self.install_progress.setMaximumWidth(160)
        self.install_progress.setTextVisible(False)
        self.install_cancel = QToolButton()
        self.install_cancel.setObjectName("install_cancel")
        for widget in (self.install_label, self.install_progress, self.install_cancel):
            self.statusBar().addPermanentWidget(widget)
            widget.hide()
        self.resize(1280, 820)

    def _build_docks(self) -> None:
        self.model_browser = ModelBrowser()
        self.model_browser.setObjectName("model_browser")
        self.models_dock = self._dock("models_dock", self.model_browser, Qt.DockWidgetArea.RightDockWidgetArea)

        self.gallery = GalleryPane()
        self.gallery.setObjectName("gallery")
        self.gallery_dock = self._dock("gallery_dock", self.gallery, Qt.DockWidgetArea.BottomDockWidgetArea)

        self.queue_view = QListView()
        self.queue_view.setObjectName("queue_view")
        self.queue_view.setModel(self.queue)
        self.queue_view.setAlternatingRowColors(True)
        self.queue_up, self.queue_down, self.queue_remove = QToolButton(), QToolButton(), QToolButton()
        self.queue_pause, self.queue_clear = QToolButton(), QToolButton()
        self.queue_pause.setCheckable(True)
        self.queue_up.setText("▲")
        self.queue_down.setText("▼")
        queue_panel = QWidget()
        queue_layout = QVBoxLayout(queue_panel)
        queue_layout.setContentsMargins(4, 4, 4, 4)
        queue_layout.addWidget(self.queue_view, 1)
        queue_buttons = QHBoxLayout()
        for button in (self.queue_up, self.queue_down, self.queue_remove, self.queue_pause, self.queue_clear):
            queue_buttons.addWidget(button)
        queue_buttons.addStretch(1)
        queue_layout.addLayout(queue_buttons)
        self.queue_dock = self._dock("queue_dock", queue_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.queue_dock, self.models_dock)  # one column on the right, two tabs
        self.queue_dock.raise_()
        self.resizeDocks([self.queue_dock], [270], Qt.Orientation.Horizontal)
        self.resizeDocks([self.gallery_dock], [230], Qt.Orientation.Vertical)

    def _dock(self, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        def action(shortcut: QKeySequence | str | None = None, role: QAction.MenuRole | None = None) -> QAction:
            item = QAction(self)
            if shortcut is not None:
                item.setShortcut(QKeySequence(shortcut))
            if role is not None:
                item.setMenuRole(role)
            return item

        # On macOS Qt moves About, Preferences and Quit into the application menu by their roles.
        self.about_action = action(None, QAction.MenuRole.AboutRole)
        self.preferences_action = action(QKeySequence.StandardKey.Preferences, QAction.MenuRole.PreferencesRole)
        if self.preferences_action.shortcut().isEmpty():
            self.preferences_action.setShortcut(QKeySequence("Ctrl+,"))
        self.quit_action = action(QKeySequence.StandardKey.Quit, QAction.MenuRole.QuitRole)
        self.open_model_action = action(QKeySequence.StandardKey.Open)
        self.import_model_action = action("Ctrl+Shift+I")
        self.reveal_output_action = action("Ctrl+Shift+O")
        self.refresh_models_action = action("Ctrl+R")
        self.generate_action = action("Ctrl+Return")
        self.generate_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.cancel_action = action("Ctrl+.")
        self.skip_action = action("Ctrl+Shift+.")
        self.minimize_action = action("Ctrl+M")
        self.train_lora_action = action("Ctrl+Shift+T")
        self.train_lora_action.setEnabled(self._training is not None)
        self.help_action = action(QKeySequence.StandardKey.HelpContents)

        bar = self.menuBar()
        self.app_menu = bar.addMenu("")
        self.app_menu.addAction(self.about_action)
        self.app_menu.addAction(self.preferences_action)
        self.app_menu.addSeparator()
        self.app_menu.addAction(self.quit_action)
        self.file_menu = bar.addMenu("")
        self.file_menu.addAction(self.open_model_action)
        self.file_menu.addAction(self.import_model_action)
        self.file_menu.addAction(self.refresh_models_action)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.reveal_output_action)
        self.edit_menu = bar.addMenu("")
        self.undo_action, self.redo_action = action(QKeySequence.StandardKey.Undo), action(QKeySequence.StandardKey.Redo)
        self.edit_menu.addAction(self.undo_action)
        self.edit_menu.addAction(self.redo_action)
        self.view_menu = bar.addMenu("")
        for dock in (self.models_dock, self.gallery_dock, self.queue_dock):
            self.view_menu.addAction(dock.toggleViewAction())
        self.generate_menu = bar.addMenu("")
        self.generate_menu.addAction(self.generate_action)
        self.generate_menu.addAction(self.skip_action)
        self.generate_menu.addAction(self.cancel_action)
        self.training_menu = bar.addMenu("")
        self.training_menu.addAction(self.train_lora_action)
        self.window_menu = bar.addMenu("")
        self.window_menu.addAction(self.minimize_action)
        self.help_menu = bar.addMenu("")
        self.help_menu.addAction(self.help_action)

    def _connect(self) -> None:
        worker, queue = self.worker, self.queue
        queue.start_job.connect(worker.run_job)  # queued: the worker lives in the engine thread
        worker.job_started.connect(self._on_job_started)
        worker.progress.connect(self._on_progress)
        worker.preview.connect(self._on_preview)
        worker.image_saved.connect(self._on_image_saved)
        worker.status.connect(self._on_engine_status)  # a bound slot: runs in the GUI thread (a lambda would not)
        worker.job_finished.connect(self._on_job_finished)
        worker.ready.connect(self._on_engine_ready)
        queue.load_problem.connect(self.show_error)
        self.engine_options_changed.connect(worker.configure)
        self.warm_up_engine.connect(worker.warm_up)
        self.shutdown_requested.connect(worker.shutdown, Qt.ConnectionType.BlockingQueuedConnection)
        self.unload_engine_requested.connect(worker.unload)
        self.preload_requested.connect(worker.preload)
        self.train_lora_action.triggered.connect(self.show_training_window)

        self.generate_button.clicked.connect(self.generate)
        self.generate_action.triggered.connect(self.generate)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_action.triggered.connect(self.cancel)
        self.skip_button.clicked.connect(self.skip)
        self.skip_action.triggered.connect(self.skip)
        self.forever_box.toggled.connect(self._on_forever_change)
        self.apply_style_button.clicked.connect(self.apply_selected_style)
        self.save_style_button.clicked.connect(self.save_prompt_as_style)
        self.open_models_button.clicked.connect(self.reveal_models_folder)
        self.install_cancel.clicked.connect(self.cancel_installs)
        browser, catalogue = self.model_browser, self.catalogue_worker
        browser.full_entry = catalogue.full_entry
        browser.checkpoint_chosen.connect(self.use_checkpoint)
        browser.vae_chosen.connect(self.use_vae)
        browser.insert_requested.connect(self.insert_into_prompt)
        browser.set_preview_requested.connect(self.set_model_preview)
        browser.files_removed.connect(self.refresh_models)
        browser.preferred_vae_changed.connect(self._on_preferred_vae_changed)
        browser.problem.connect(self.show_error)
        browser.convert_requested.connect(lambda path: self.install([Path(path)]))
        self.catalogue_refresh_requested.connect(catalogue.refresh)
        self.catalogue_shutdown_requested.connect(catalogue.shutdown, Qt.ConnectionType.BlockingQueuedConnection)
        catalogue.entries_changed.connect(self._on_catalogue_entries)
        catalogue.entry_updated.connect(self._on_catalogue_entry)
        catalogue.hash_progress.connect(self._on_hash_progress)
        catalogue.hashing_finished.connect(self._on_hashing_finished)
        catalogue.problem.connect(self._on_catalogue_problem)
        self.model_watcher.directoryChanged.connect(self._watch_timer.start)
        self._watch_timer.timeout.connect(self.refresh_models)
        self.parameters.checkpoint.currentIndexChanged.connect(self._on_checkpoint_selected)
        self.parameters.checkpoint_changed.connect(self._on_checkpoint_change)
        self._token_context_timer.timeout.connect(self._update_token_context)
        self.gallery.image_activated.connect(self._on_gallery_activated)
        self.gallery.reuse_requested.connect(self.reuse_parameters)
        self.gallery.reuse_seed_requested.connect(self.reuse_seed)
        self.gallery.problem.connect(self._on_catalogue_problem)
        if self.gallery_worker is not None:
            gallery = self.gallery_worker
            self.gallery_reconcile_requested.connect(gallery.reconcile)
            self.gallery_add_requested.connect(gallery.add)
            self.gallery_shutdown_requested.connect(gallery.shutdown, Qt.ConnectionType.BlockingQueuedConnection)
            gallery.changed.connect(self.gallery.refresh)
            gallery.problem.connect(self._on_catalogue_problem)

        self.queue_up.clicked.connect(lambda: self._move_selected_job(-1))
        self.queue_down.clicked.connect(lambda: self._move_selected_job(1))
        self.queue_remove.clicked.connect(self._remove_selected_job)
        self.queue_pause.toggled.connect(queue.set_paused)
        self.queue_clear.clicked.connect(queue.clear_ended)
        queue.paused_changed.connect(self.queue_pause.setChecked)

        self.about_action.triggered.connect(self.show_about)
        self.preferences_action.triggered.connect(self.show_preferences)
        self.quit_action.triggered.connect(self.close)
        self.open_model_action.triggered.connect(self.open_model)
        self.import_model_action.triggered.connect(self.import_models)
        self.refresh_models_action.triggered.connect(self.refresh_models)
        self.reveal_output_action.triggered.connect(self.reveal_output_folder)
        self.minimize_action.triggered.connect(self.showMinimized)
        self.help_action.triggered.connect(lambda: QDesktopServices.openUrl(QUrl("https://github.com/AUTOMATIC1111/stable-diffusion-webui/wiki")))
        self.undo_action.triggered.connect(lambda: self._focused_editor_call("undo"))
        self.redo_action.triggered.connect(lambda: self._focused_editor_call("redo"))

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Diffusion Desktop"))
        self.prompt_label.setText(self.tr("Prompt"))
        self.negative_label.setText(self.tr("Negative prompt"))
        self.styles_label.setText(self.tr("Styles"))
        self.apply_style_button.setText(self.tr("Apply"))
        self.apply_style_button.setToolTip(self.tr("Add the style's text to the prompts"))
        self.save_style_button.setText(self.tr("Save…"))
        self.save_style_button.setToolTip(self.tr("Save the current prompts as a style"))
        self.generate_button.setText(self.tr("Generate"))
        self.generate_button.setToolTip(self.tr("Add to the queue (⌘↩)"))
        self.cancel_button.setText(self.tr("Cancel"))
        self.cancel_button.setToolTip(self.tr("Stop the running job (⌘.)"))
        self.skip_button.setText(self.tr("Skip"))
        self.skip_button.setToolTip(self.tr("Abandon the current image and go on with the next"))
        self.forever_box.setText(self.tr("Generate forever"))
        self.image_view.set_placeholder(self.tr("Your images appear here.\nWrite a prompt and press ⌘↩."))
        self.prompt.set_placeholder_text(self.tr("Describe the image: a photo of a cat, (masterpiece:1.2), <lora:name:0.8>…"))
        self.negative_prompt.set_placeholder_text(self.tr("What to avoid: blurry, low quality…"))
        self.welcome.setText(
            self.tr(
                "Welcome to Diffusion Desktop.\n\nNo model is installed yet. Download a Stable Diffusion "
                "checkpoint (.safetensors) from civitai.com or huggingface.co, then drop it on this window "
                "or put it in the models folder:\n\n{folder}"
            ).replace("{folder}", str(self.paths.models_dir / "Stable-diffusion"))
        )
        self.open_models_button.setText(self.tr("Open the Models Folder"))
        self.models_dock.setWindowTitle(self.tr("Models"))
        self.gallery_dock.setWindowTitle(self.tr("Gallery"))
        self.queue_dock.setWindowTitle(self.tr("Queue"))
        self.install_cancel.setText(self.tr("Cancel"))
        self.install_cancel.setToolTip(self.tr("Stop installing the dropped models"))
        self.queue_up.setToolTip(self.tr("Move up"))
        self.queue_down.setToolTip(self.tr("Move down"))
        self.queue_remove.setText(self.tr("Remove"))
        self.queue_pause.setText(self.tr("Pause"))
        self.queue_clear.setText(self.tr("Clear finished"))
        for menu, text in (
            (self.app_menu, self.tr("Diffusion Desktop")),
            (self.file_menu, self.tr("File")),
            (self.edit_menu, self.tr("Edit")),
            (self.view_menu, self.tr("View")),
            (self.generate_menu, self.tr("Generate")),
            (self.training_menu, self.tr("Training")),
            (self.window_menu, self.tr("Window")),
            (self.help_menu, self.tr("Help")),
        ):
            menu.setTitle(text)
        for item, text in (
            (self.about_action, self.tr("About Diffusion Desktop")),
            (self.preferences_action, self.tr("Preferences…")),
            (self.quit_action, self.tr("Quit Diffusion Desktop")),
            (self.open_model_action, self.tr("Open Model…")),
            (self.import_model_action, self.tr("Import Model…")),
            (self.refresh_models_action, self.tr("Refresh Models")),
            (self.reveal_output_action, self.tr("Reveal Output Folder")),
            (self.undo_action, self.tr("Undo")),
            (self.redo_action, self.tr("Redo")),
            (self.generate_action, self.tr("Generate")),
            (self.skip_action, self.tr("Skip Image")),
            (self.cancel_action, self.tr("Cancel")),
            (self.minimize_action, self.tr("Minimize")),
            (self.train_lora_action, self.tr("Train LoRA…")),
            (self.help_action, self.tr("Diffusion Desktop Help")),
        ):
            item.setText(text)
        self.parameters.retranslate()
        self._update_buttons()

    # --- state ---------------------------------------------------------------------------------

    def _restore(self) -> None:
        store = self.store
        self.prompt.set_text(store.get(keys.PROMPT))
        self.negative_prompt.set_text(store.get(keys.NEGATIVE_PROMPT))
        geometry, state = store.get_bytes("window/geometry"), store.get_bytes("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        splitter = store.get_bytes("window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)
        self._reload_styles()
        restored = self.queue.restore()
        if restored:
            self.queue.set_paused(True)  # let the user look before old jobs start
            self.statusBar().showMessage(
                self.tr("{count} queued job(s) restored; press Pause to resume.").replace("{count}", str(restored)), 15000
            )
        if store.set_aside is not None:
            self.show_error(
                self.tr("The settings file was damaged and has been set aside ({name}); defaults are in use.").replace(
                    "{name}", store.set_aside.name
                )
            )

    def save_state(self) -> None:
        store = self.store
        store.set(keys.PROMPT, self.prompt.text())
        store.set(keys.NEGATIVE_PROMPT, self.negative_prompt.text())
        self.parameters.save(store)
        store.set_bytes("window/geometry", self.saveGeometry())
        store.set_bytes("window/state", self.saveState())
        store.set_bytes("window/splitter", self.splitter.saveState())
        store.sync()

    def model_roots(self) -> list[Path]:
        return [self.paths.models_dir, *(Path(folder) for folder in self.store.get(keys.MODEL_FOLDERS))]

    def output_dir(self) -> Path:
        chosen = self.store.get(keys.OUTPUT_FOLDER)
        return Path(chosen) if chosen else self.paths.default_output_dir

    @Slot()
    def refresh_models(self) -> None:
        roots = self.model_roots()
        checkpoints = list_models(roots, "checkpoint")
        first_time = self.parameters.checkpoint.count() == 0
        self.parameters.set_checkpoints(checkpoints)
        self.parameters.set_vaes(list_models(roots, "vae"))
        if first_time:
            self.parameters.restore(self.store)
        self.catalogue_refresh_requested.emit([str(root) for root in roots])
        self._watch_model_folders(roots)
        if hasattr(self.prompt, "set_completion_names"):
            names = {kind: [entry.name for entry in list_models(roots, kind)] for kind in ("lora", "embedding", "hypernetwork")}
            for editor in (self.prompt, self.negative_prompt):
                editor.set_completion_names(names["lora"], names["embedding"], names["hypernetwork"])
        self.pages.setCurrentIndex(1 if checkpoints else 0)
        self._token_context_timer.start()  # embedding files may have come or gone

    @Slot()
    def _update_token_context(self) -> None:
        """Tell the token counter the model folders and the checkpoint's family, then count both prompts again."""
        self.token_context_changed.emit([str(root) for root in self.model_roots()], self.parameters.family())
        if self._count_tokens is not None:
            for editor in (self.prompt, self.negative_prompt):
                editor.set_token_counter(self._count_tokens)

    def _apply_engine_options(self) -> None:
        store = self.store
        self.engine_options_changed.emit(
            {
                "output_dir": self.output_dir(),
                "device": store.get(keys.DEVICE),
                "precision": store.get(keys.PRECISION),
                "attention_slicing": store.get(keys.ATTENTION_SLICING),
                "preview": store.get(keys.PREVIEW) != "off",
                "model_roots": tuple(self.model_roots()),  # LoRAs, embeddings, hypernetworks, TAESD
                "cache_dir": self.paths.settings_file.parent / "cache",  # converted hypernetworks
            }
        )

    # --- commands ------------------------------------------------------------------------------

    @Slot()
    def generate(self) -> None:
        """Freeze the current fields into a request and queue it."""
        try:
            request = self.parameters.request(self.prompt.text(), self.negative_prompt.text())
            if request.model_path is None:
                raise InvalidRequest(self.tr("Choose a checkpoint first (or drop a .safetensors file on the window)."))
        except (InvalidRequest, ValueError) as error:
            self.show_error(str(error))
            return
        vae_warning = self.parameters.vae_warning()  # a preferred VAE that is not installed: the job still runs
        if vae_warning:
            self.show_error(vae_warning)
        else:
            self.hide_error()
        self.queue.add(request)
        self.save_state()
        self._update_buttons()

    @Slot()
    def cancel(self) -> None:
        if not self.worker.cancel():
            waiting = self.queue.waiting()
            if waiting:
                self.queue.remove(waiting[-1].id)
        self.forever_box.setChecked(False)

    @Slot()
    def skip(self) -> None:
        self.worker.skip()

    def show_error(self, message: str, hint: str = "") -> None:
        self.error_banner.setText(message + (f"\n{hint}" if hint else ""))
        self.error_banner.show()

    def hide_error(self) -> None:
        self.error_banner.hide()

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            self.tr("About Diffusion Desktop"),
            self.tr("Diffusion Desktop\nStable Diffusion on your Mac, with A1111's prompts, samplers and seeds."),
        )

    def show_preferences(self) -> None:
        dialog = PreferencesDialog(self.store, str(self.paths.default_output_dir), self)
        if dialog.exec():
            self._apply_engine_options()
            self.refresh_models()
            self.reconcile_gallery()

    def open_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("Open Model"), str(self.paths.models_dir), self.tr("Models (*.safetensors)")
        )
        if path:
            self.use_checkpoint(path)

    def import_models(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, self.tr("Import Models"), "", self.tr("Models (*.safetensors *.ckpt *.pt *.pth *.bin)")
        )
        self.install_dropped([Path(path) for path in paths])

    def reveal_output_folder(self) -> None:
        folder = self.output_dir()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def reveal_models_folder(self) -> None:
        folder = self.paths.models_dir / "Stable-diffusion"
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def install(self, files: list[Path]) -> None:
        """Copy (or move, or link) dropped model files into the models folder in the background, one at a time."""
        mode = self.store.get(keys.INSTALL_MODE)
        for path in files:
            token = CancelToken()
            self._installing.append(token)
            task = _InstallTask(path, self.paths.models_dir, mode, token, self.catalogue_worker.find_duplicate)
            task.signals.progress.connect(self._on_install_progress)
            task.signals.done.connect(self._on_install_done)
            self._install_count += 1
            self._install_pool.start(task)
        self._show_install_progress()

    @Slot()
    def cancel_installs(self) -> None:
        for token in self._installing:
            token.cancel()

    # --- reusing an image's parameters ----------------------------------------------------------

    @Slot(object)
    def reuse_parameters(self, image: object) -> None:
        """Put an image's prompt and parameters into the fields (anything with .prompt, .negative_prompt, .params)."""
        try:
            # The fields as they are: an "Automatic" VAE stays Automatic (for the image's checkpoint).
            base = self.parameters.request(self.prompt.text(), self.negative_prompt.text(), resolve_automatic_vae=False)
        except (InvalidRequest, ValueError):
            base = GenerationRequest(prompt="")
        reused = reuse_parameters(image.prompt, image.negative_prompt, dict(image.params), base)
        request = reused.request
        self.prompt.set_text(request.prompt)
        self.negative_prompt.set_text(request.negative_prompt)
        self.parameters.apply(request)
        notes = list(reused.warnings)
        model_note = self._select_reused_model(reused.model_name, reused.model_hash)
        if model_note:
            self.show_error(model_note)
        else:
            self.hide_error()
        if reused.vae_name:  # infotext names the VAE file ("vae-ft-mse-840000-ema-pruned.safetensors"), as A1111
            combo = self.parameters.vae
            paths = [Path(combo.itemData(index)) for index in range(1, combo.count()) if combo.itemData(index)]
            found = resolve_vae_name(reused.vae_name, paths)
            if found is not None:
                combo.setCurrentIndex(combo.findData(str(found)))
        self.statusBar().showMessage(
            self.tr("Parameters reused") + ("; " + "; ".join(notes) if notes else ""), 10000
        )

    @Slot(int)
    def reuse_seed(self, seed: int) -> None:
        self.parameters.seed.setText(str(seed))

    def _select_reused_model(self, name: str, model_hash: str) -> str:
        """Select the image's checkpoint by name, else by hash; a message when neither is installed."""
        if not name and not model_hash:
            return ""
        combo = self.parameters.checkpoint
        index = combo.findText(name) if name else -1
        if index >= 0:
            combo.setCurrentIndex(index)
            return ""
        same_hash = [entry for entry in self.catalogue_worker.find_by_short_hash(model_hash) if entry.kind == "checkpoint"]
        if same_hash:
            self.use_checkpoint(str(same_hash[0].path))
            self.statusBar().showMessage(
                self.tr("{model} is not installed under that name; using {other}, which has the same hash")
                .replace("{model}", name)
                .replace("{other}", same_hash[0].name),
                15000,
            )
            return ""
        return (
            self.tr("This image was made with the model {model} (hash {hash}), which is not installed; the current model is kept.")
            .replace("{model}", name or "?")
            .replace("{hash}", model_hash or "?")
        )

    # --- the model browser -----------------------------------------------------------------------

    @Slot(str)
    def use_checkpoint(self, path: str) -> None:
        if self.parameters.checkpoint.findData(path) < 0:  # a file outside the model folders
            self.parameters.checkpoint.addItem(Path(path).stem, path)
        self.parameters.select_checkpoint(path)
        self.pages.setCurrentIndex(1)

    @Slot(str, str)
    def _on_preferred_vae_changed(self, checkpoint: str, vae_name: str) -> None:
        self.parameters.refresh_preferred_vae()  # "Automatic (…)" names the new preference if it is this checkpoint
        name = Path(checkpoint).name if Path(checkpoint).is_dir() else Path(checkpoint).stem
        if vae_name:
            message = self.tr("{checkpoint} now prefers the VAE {vae}").replace("{vae}", vae_name)
        else:
            message = self.tr("{checkpoint} now uses its own VAE (no preference)")
        self.statusBar().showMessage(message.replace("{checkpoint}", name), 8000)

    @Slot(str)
    def _on_checkpoint_change(self, _path: str) -> None:
        warning = self.parameters.vae_warning()
        if warning:
            self.statusBar().showMessage(warning, 15000)
        self._token_context_timer.start()  # another family may use other embeddings

    @Slot(str)
    def use_vae(self, path: str) -> None:
        index = self.parameters.vae.findData(path)
        if index < 0:
            self.parameters.vae.addItem(Path(path).stem, path)
            index = self.parameters.vae.count() - 1
        self.parameters.vae.setCurrentIndex(index)

    @Slot(str)
    def insert_into_prompt(self, text: str) -> None:
        """Insert a network's tag at the prompt's cursor, with a comma before it when needed (one undo step)."""
        editor = self.prompt.text_edit
        cursor = editor.textCursor()
        before = editor.toPlainText()[: cursor.position()].rstrip(" ")
        if before and not before.endswith((",", "\n", "(", "[")):
            text = ", " + text
        elif before and not editor.toPlainText()[: cursor.position()].endswith(" "):
            text = " " + text
        cursor.insertText(text)
        editor.setTextCursor(cursor)
        self.prompt.setFocus()

    @Slot(object)
    def set_model_preview(self, entry: CatalogueEntry) -> None:
        """Use the selected gallery image as the model's ``name.preview.png`` (written atomically)."""
        selected = self.gallery.selected_image()
        if selected is None:
            self.show_error(self.tr("Select an image in the gallery first, then choose Set Preview again."))
            return
        image = QImage(str(selected.path))
        stem = entry.path if entry.is_folder else entry.path.with_suffix("")
        target = Path(f"{stem}.preview.png")
        temp = target.with_name(f".{target.name}.tmp")
        if image.isNull() or not image.save(str(temp), "PNG"):
            temp.unlink(missing_ok=True)
            self.show_error(self.tr("Could not write the preview next to {name}.").replace("{name}", entry.path.name))
            return
        os.replace(temp, target)
        self.model_browser.model.forget_thumbnail(target)
        self.refresh_models()

    @Slot(list)
    def _on_catalogue_entries(self, entries: list) -> None:
        self.model_browser.set_entries(entries)
        self._on_checkpoint_selected()
        if self._select_after_refresh is not None:
            installed = self.model_browser.model.entry(self._select_after_refresh)
            if installed is not None:
                self.model_browser.show_tab(_tab_for(installed.kind, installed.error))
                self.model_browser.select(installed.path)
                self._select_after_refresh = None
        self.models_refreshed.emit()

    @Slot(object)
    def _on_catalogue_entry(self, entry: CatalogueEntry) -> None:
        self.model_browser.update_entry(entry)

    @Slot(str, object, object)
    def _on_hash_progress(self, name: str, done: int, total: int) -> None:
        percent = int(done * 100 / total) if total else 100
        self.model_browser.set_hash_status(self.tr("hashing {name} {percent}%").replace("{name}", name).replace("{percent}", str(percent)))

    @Slot()
    def _on_hashing_finished(self) -> None:
        self.model_browser.set_hash_status("")

    @Slot(str)
    def _on_catalogue_problem(self, message: str) -> None:
        self.statusBar().showMessage(message, 15000)

    @Slot()
    def _on_checkpoint_selected(self, *_args: object) -> None:
        path = self.parameters.checkpoint_path()
        entry = self.model_browser.model.entry(path) if path is not None else None
        self.model_browser.set_current_family(entry.family if entry is not None else "")

    def _watch_model_folders(self, roots: list[Path]) -> None:
        """Watch every model folder (and its subfolders, as A1111 lists them) for files added in Finder."""
        wanted: list[str] = []
        for root in roots:
            for folder in (root, *(root / name for names in FOLDERS.values() for name in names), root.parent / "embeddings"):
                if folder.is_dir():
                    wanted.append(str(folder))
                    wanted.extend(str(sub) for sub in _subfolders(folder, limit=200))
        watched = set(self.model_watcher.directories())
        stale = [folder for folder in watched if folder not in wanted]
        if stale:
            self.model_watcher.removePaths(stale)
        new = [folder for folder in dict.fromkeys(wanted) if folder not in watched]
        if new:
            self.model_watcher.addPaths(new)

    # --- styles --------------------------------------------------------------------------------

    def _reload_styles(self) -> None:
        try:
            styles = read_styles(self.paths.styles_file)
        except DesktopError as error:
            self.show_error(str(error))
            styles = []
        self.styles.clear()
        for style in styles:
            self.styles.addItem(style.name, style)

    def apply_selected_style(self) -> None:
        style = self.styles.currentData()
        if style is None:
            return
        self.prompt.set_text(apply_style(self.prompt.text(), style.prompt))
        self.negative_prompt.set_text(apply_style(self.negative_prompt.text(), style.negative_prompt))

    def save_prompt_as_style(self, name: str | None = None) -> None:
        if not name:
            from PySide6.QtWidgets import QInputDialog

            name, ok = QInputDialog.getText(self, self.tr("Save Style"), self.tr("Style name:"))
            if not ok or not name.strip():
                return
        styles = [s for s in read_styles(self.paths.styles_file) if s.name != name.strip()]
        styles.append(Style(name.strip(), self.prompt.text(), self.negative_prompt.text()))
        write_styles(self.paths.styles_file, styles)
        self._reload_styles()
        self.styles.setCurrentIndex(self.styles.findText(name.strip()))

    # --- worker events -------------------------------------------------------------------------

    @Slot(str)
    def _on_job_started(self, job_id: str) -> None:
        self.progress_bar.setRange(0, 0)  # busy until the first step (loading the model)
        self.progress_label.setText(self.tr("Loading the model…"))
        self._update_buttons()

    @Slot(str, object)
    def _on_progress(self, job_id: str, step: StepProgress) -> None:
        total = step.batch_count * step.total_steps
        done = step.image_index * step.total_steps + step.step
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)
        rate = step.iterations_per_second
        remaining = (total - done) / rate if rate > 0 else 0.0
        text = self.tr("Step {step}/{total} · {rate} it/s · {eta} left").replace("{step}", str(step.step))
        text = text.replace("{total}", str(step.total_steps)).replace("{rate}", f"{rate:.2f}").replace("{eta}", _duration(remaining))
        if step.batch_count > 1:
            text = self.tr("Batch {index}/{count}").replace("{index}", str(step.image_index + 1)).replace(
                "{count}", str(step.batch_count)
            ) + " · " + text
        self.progress_label.setText(text)
        self.queue.on_progress(job_id, done / total if total else 0.0)

    @Slot()
    def _on_engine_ready(self) -> None:
        self.statusBar().showMessage(self.tr("Ready"), 4000)
        self.engine_ready.emit()

    @Slot(str)
    def _on_engine_status(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)

    @Slot(str, object)
    def _on_preview(self, _job_id: str, preview: PreviewImage) -> None:
        self.image_view.set_image(preview_to_image(preview))

    @Slot(str, object)
    def _on_image_saved(self, job_id: str, saved: ImageSaved) -> None:
        pixmap = QPixmap(saved.path)
        self.image_view.set_image(pixmap)
        self.queue.on_image_saved(job_id, saved.path)
        self.parameters.note_last_seed(saved.seed)
        self.gallery_add_requested.emit(str(saved.path))

    @Slot(str, object)
    def _on_job_finished(self, job_id: str, report: JobReport) -> None:
        self.queue.on_job_finished(job_id, report)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1 if report.outcome == "finished" else 0)
        outcomes = {
            "finished": self.tr("Done: {count} image(s) in {seconds} s"),
            "cancelled": self.tr("Cancelled after {count} image(s)"),
            "failed": self.tr("Failed"),
        }
        self.progress_label.setText(
            outcomes[report.outcome].replace("{count}", str(len(report.images))).replace("{seconds}", f"{report.seconds:.1f}")
        )
        if report.failure is not None:
            self.show_error(report.failure.message, report.failure.hint)
        elif report.warnings:
            self.show_error("\n".join(report.warnings))
        self._update_buttons()
        self.job_done.emit(job_id, report)

    def _show_install_progress(self) -> None:
        busy = self._install_count > 0
        self.install_progress.setVisible(busy)
        self.install_cancel.setVisible(busy)
        self.install_label.setVisible(busy)
        if busy:
            self.install_progress.setRange(0, 0)

    @Slot(str, object, object)
    def _on_install_progress(self, name: str, done: int, total: int) -> None:
        self.install_progress.setRange(0, 1000)
        self.install_progress.setValue(int(done * 1000 / total) if total else 1000)
        text = self.tr("Installing {name}").replace("{name}", name)
        if self._install_count > 1:
            text += " " + self.tr("({count} left)").replace("{count}", str(self._install_count))
        self.install_label.setText(text)

    @Slot(str, object)
    def _on_install_done(self, name: str, outcome: object) -> None:
        self._install_count -= 1
        if self._install_count == 0:
            self._installing.clear()
        self._show_install_progress()
        if isinstance(outcome, Installed):
            if outcome.duplicate:
                message = self.tr("{name} is already installed as {existing}").replace("{existing}", outcome.path.name)
            elif outcome.converted_from is not None:
                message = self.tr("Converted {name} to {installed} and installed it").replace("{installed}", outcome.path.name)
            else:
                message = self.tr("Installed {name}: {what}").replace("{what}", outcome.probe.describe())
            self.statusBar().showMessage(message.replace("{name}", name), 10000)
            self._select_after_refresh = outcome.path
        elif outcome != "cancelled":
            self.show_error(self.tr("Could not install {name}: {error}").replace("{name}", name).replace("{error}", str(outcome)))
        self.refresh_models()

    def _on_forever_change(self, on: bool) -> None:
        self.queue.generate_forever = on
        if on and self.queue.running() is None and not self.queue.waiting():
            self.generate()

    @Slot(str)
    def _on_gallery_activated(self, path: str) -> None:
        self.image_view.set_image(QPixmap(path))
        self.pages.setCurrentIndex(1)

    def reconcile_gallery(self) -> None:
        """Bring the gallery index in line with the output folder (images added or removed in Finder)."""
        self.gallery_reconcile_requested.emit([str(self.output_dir())])

    def _selected_job_id(self) -> str | None:
        index = self.queue_view.currentIndex()
        job = index.data(JobQueue.JobRole) if index.isValid() else None
        return job.id if job is not None else None

    def _move_selected_job(self, delta: int) -> None:
        job_id = self._selected_job_id()
        if job_id and self.queue.move(job_id, delta):
            row = next(i for i, job in enumerate(self.queue.jobs) if job.id == job_id)
            self.queue_view.setCurrentIndex(self.queue.index(row))

    def _remove_selected_job(self) -> None:
        job_id = self._selected_job_id()
        if job_id is None:
            return
        job = self.queue.job(job_id)
        if job is not None and job.state == RUNNING:
            self.worker.cancel(job_id)
        else:
            self.queue.remove(job_id)

    def _update_buttons(self) -> None:
        running = self.queue.running() is not None
        self.cancel_button.setEnabled(running or bool(self.queue.waiting()))
        self.skip_button.setEnabled(running)

    def _focused_editor_call(self, method: str) -> None:
        widget = QApplication.focusWidget()
        if widget is not None and hasattr(widget, method):
            getattr(widget, method)()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        # The app installs a new translator when the language setting changes; Qt then sends
        # LanguageChange to every widget, and each one re-reads its texts.
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        elif event.type() == QEvent.Type.ActivationChange and self.isActiveWindow() and self.gallery_thread.isRunning():
            self.reconcile_gallery()  # back from Finder: images may have been added or deleted there
        super().changeEvent(event)

    # --- drag and drop ---------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        files = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.install_dropped(files)

    def install_dropped(self, files: list[Path]) -> None:
        """Install the model files among ``files``; say what each other file is and why it was not installed."""
        models, refused = [], []
        for path in files:
            if path.suffix.lower() in _IMAGE_SUFFIXES and path.is_file():
                self.show_png_info(path)  # PNG Info: how the image was made
                continue
            reason = _not_a_model_reason(path)
            if reason is None:
                models.append(path)
            else:
                refused.append(self.tr(reason).replace("{name}", path.name))
        if refused:
            self.show_error("\n".join(refused))
        if models:
            self.install(models)

    def show_png_info(self, path: Path) -> None:
        dialog = show_png_info(self, path)
        if dialog is not None:
            dialog.reuse_requested.connect(self.reuse_parameters)

    # --- shutdown ------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self._confirm_quit_while_training():
            event.ignore()
            return
        self.save_state()
        self.cancel_installs()
        self._install_pool.waitForDone(5000)  # a cancelled copy stops within one 8 MB block
        self.shutdown_catalogue()
        self.shutdown_gallery()
        self.shutdown_engine()
        super().closeEvent(event)

    # --- training ---

    @Slot()
    def show_training_window(self) -> TrainingWindow | None:
        """Training > Train LoRA…: one window, made on first use, kept while a run goes on in the background."""
        if self._training is None:
            return None
        if self.training_window is None:
            window = TrainingWindow(
                self._training_checkpoints, self.paths.models_dir / FOLDERS["lora"][0], self._training.command_for,
                self._training.scan_dataset, store=self.store, device=self.store.get(keys.DEVICE),
            )  # fmt: skip
            window.training_started.connect(self._on_training_started)
            window.training_stopped.connect(self._on_training_stopped)
            window.lora_saved.connect(self._on_lora_saved)
            self.training_window = window
        self.training_window.show()
        self.training_window.raise_()
        self.training_window.activateWindow()
        return self.training_window

    def _training_checkpoints(self) -> list[tuple[str, Path, str]]:
        """(name, path, family) of every checkpoint, the family from the catalogue when it knows it."""
        rows = []
        for entry in list_models(self.model_roots(), "checkpoint"):
            known = self.model_browser.model.entry(entry.path)
            family = known.family if known is not None and known.family != "unknown" else ""
            rows.append((entry.name, entry.path, family))
        return rows

    @Slot()
    def _on_training_started(self) -> None:
        """A training needs the memory: hold the queue and free the inference models."""
        self._queue_paused_before_training = self.queue.paused
        self.queue.set_paused(True)
        self.unload_engine_requested.emit()
        self.statusBar().showMessage(self.tr("Training: generation is paused and the models are unloaded"))

    @Slot()
    def _on_training_stopped(self) -> None:
        if self._quitting:
            return  # the app is closing: nothing to reload
        if not self._queue_paused_before_training:
            self.queue.set_paused(False)
        try:
            request = self.parameters.request(self.prompt.text(), self.negative_prompt.text())
        except (InvalidRequest, ValueError):
            return  # nothing sensible to preload; the next Generate reports the problem
        if request.model_path is not None:
            self.preload_requested.emit(request)  # load the checkpoint again in the engine thread

    @Slot(str)
    def _on_lora_saved(self, _path: str) -> None:
        self.refresh_models()

    def _confirm_quit_while_training(self) -> bool:
        """Quitting stops a running training (it saves a LoRA of the steps so far); ask first."""
        window = self.training_window
        if window is None or not window.is_training():
            return True
        box = QMessageBox(QMessageBox.Icon.Warning, self.tr("Training is running"), "", QMessageBox.StandardButton.NoButton, self)
        box.setText(self.tr("Quitting cancels the training. A LoRA of the steps so far and the resume state are saved."))
        quit_button = box.addButton(self.tr("Cancel Training and Quit"), QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(self.tr("Keep Training"), QMessageBox.ButtonRole.RejectRole)
        box.exec()
        if box.clickedButton() is not quit_button:
            return False
        self._quitting = True
        window.shutdown()
        window.close()
        return True

    def shutdown_gallery(self) -> None:
        if self.gallery_worker is None or not self.gallery_thread.isRunning():
            return
        self.gallery.set_store(None)
        self.gallery_worker.stop()
        self.gallery_shutdown_requested.emit()  # blocks until the index is closed
        self.gallery_thread.quit()
        self.gallery_thread.wait(10000)

    def shutdown_catalogue(self) -> None:
        if not self.catalogue_thread.isRunning():
            return
        self.catalogue_worker.stop()  # interrupts hashing within one block
        self.catalogue_shutdown_requested.emit()  # blocks until the catalogue is closed
        self.catalogue_thread.quit()
        self.catalogue_thread.wait(10000)

    def shutdown_engine(self, timeout_ms: int = 30000) -> None:
        """Cancel the running job (it stops within a step), then stop the thread; never kill it."""
        if not self.engine_thread.isRunning():
            return
        self.queue.set_paused(True)
        self.worker.cancel()
        self.shutdown_requested.emit()  # blocks until the worker has finished its job and closed the engine
        self.engine_thread.quit()
        self.engine_thread.wait(timeout_ms)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


_MODEL_SUFFIXES = frozenset({".safetensors", *PICKLE_SUFFIXES})
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})


def _not_a_model_reason(path: Path) -> str | None:
    """Why a dropped file is not even tried as a model (None: try it). Texts are translated by the caller."""
    name = path.name.lower()
    if name.endswith(PARTIAL_DOWNLOAD_SUFFIXES):
        return QT_TRANSLATE_NOOP("MainWindow", "{name} is an incomplete download: wait for it to finish, then drop the finished file.")
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return None
        return QT_TRANSLATE_NOOP("MainWindow", "{name} is a folder without a model in it (a diffusers model folder has a model_index.json).")
    if path.suffix.lower() in _MODEL_SUFFIXES:
        return None
    return QT_TRANSLATE_NOOP(
        "MainWindow", "{name} is not a model file: models are .safetensors files (or .ckpt/.pt files, which are converted)."
    )


def _tab_for(kind: str, error: str) -> str:
    if error:
        return "other"
    return {"checkpoint": "checkpoints", "lora": "lora", "lycoris": "lora", "embedding": "embeddings", "hypernetwork": "hypernetworks", "vae": "vae"}.get(
        kind, "other"
    )


def _subfolders(folder: Path, limit: int) -> list[Path]:
    found: list[Path] = []
    for current, dirs, _files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".") and not (Path(current) / name / "model_index.json").is_file()]
        found.extend(Path(current) / name for name in dirs)
        if len(found) >= limit:
            return found[:limit]
    return found


class _InstallSignals(QObject):
    progress = Signal(str, object, object)  # name, bytes done, total (Python ints: files exceed 2 GB)
    done = Signal(str, object)  # name, Installed, "cancelled" or the error message


class _InstallTask(QRunnable):
    def __init__(self, source: Path, models_dir: Path, mode: str, cancel: CancelToken, find_duplicate) -> None:  # noqa: ANN001
        super().__init__()
        self.source, self.models_dir, self.mode, self.cancel = source, models_dir, mode, cancel
        self.find_duplicate = find_duplicate
        self.signals = _InstallSignals()

    def run(self) -> None:
        name = self.source.name
        if self.cancel.is_set():
            self.signals.done.emit(name, "cancelled")
            return
        try:
            installed = install_model(
                self.source,
                self.models_dir,
                mode=self.mode,
                progress=lambda done, total: self.signals.progress.emit(name, done, total),
                cancel=self.cancel,
                find_duplicate=self.find_duplicate,
            )
        except Cancelled:
            self.signals.done.emit(name, "cancelled")
            return
        except Exception as error:  # noqa: BLE001 - reported to the user, the app goes on
            self.signals.done.emit(name, str(error) or type(error).__name__)
            return
        self.signals.done.emit(name, installed)
