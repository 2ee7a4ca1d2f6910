"""The model browser: every model in the catalogue by kind, as a thumbnail grid or a list, with search.

Double-click a checkpoint (or VAE) to use it; click a LoRA, embedding or hypernetwork to insert it
into the prompt. Models made for another base than the current checkpoint are dimmed. Everything
shown from a file (names, civitai text, metadata) is plain text, never rich text: files are hostile.
A checkpoint's context menu sets its preferred VAE, in its ``name.json`` as A1111 keeps it.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QColor,
    QFont,
    QGuiApplication,
    QIcon,
    QImage,
    QKeySequence,
    QPainter,
    QPalette,
    QPixmap,
)
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QTabBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.errors import DesktopError
from desktop.library.catalogue_entry import CatalogueEntry
from desktop.library.probe import PICKLE_SUFFIXES
from desktop.library.sidecars import VAE_NONE, read_preferred_vae, resolve_vae_name, write_preferred_vae
from desktop.ui.file_actions import reveal_file
from desktop.ui.thumbnails import ThumbnailLoader
from desktop.ui.view_actions import view_action

THUMBNAIL = 112
_SHORT_LABEL = {"checkpoint": "CKPT", "lora": "LoRA", "lycoris": "LyCO", "embedding": "TI", "hypernetwork": "HN", "vae": "VAE"}
NETWORK_KINDS = frozenset({"lora", "lycoris", "embedding", "hypernetwork"})
# Tabs: the kinds each shows. The last one, None, collects everything the app cannot use (with the reason).
TABS: tuple[tuple[str, frozenset[str] | None], ...] = (
    ("checkpoints", frozenset({"checkpoint"})),
    ("lora", frozenset({"lora", "lycoris"})),
    ("embeddings", frozenset({"embedding"})),
    ("hypernetworks", frozenset({"hypernetwork"})),
    ("vae", frozenset({"vae"})),
    ("other", None),
)
USABLE_KINDS = frozenset({"checkpoint", "vae"}) | NETWORK_KINDS


def prompt_text_for(entry: CatalogueEntry) -> str:
    """What clicking a network inserts, as A1111's extra-networks cards do (activation text after a space)."""
    weight = f"{entry.preferred_weight:g}" if entry.preferred_weight else "1"
    if entry.kind in ("lora", "lycoris"):
        text = f"<lora:{entry.name}:{weight}>"
    elif entry.kind == "hypernetwork":
        text = f"<hypernet:{entry.name}:{weight}>"
    else:
        text = entry.name
    if entry.trigger_words:
        text += " " + ", ".join(entry.trigger_words)
    return text


def plain_tooltip(text: str) -> str:
    """A tooltip that shows ``text`` literally: Qt guesses rich text for tooltips, so escape and say so."""
    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"


def is_usable(entry: CatalogueEntry) -> bool:
    return entry.kind in USABLE_KINDS and not entry.error


class CatalogueModel(QAbstractListModel):
    """The catalogue's entries for Qt views; thumbnails load off the GUI thread on first display."""

    EntryRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._entries: list[CatalogueEntry] = []
        self._rows: dict[Path, int] = {}
        self._family = ""
        self._thumbnails: dict[str, QIcon] = {}  # preview path -> icon
        self._placeholders: dict[str, QIcon] = {}
        self._loader = ThumbnailLoader(self)  # previews are decoded on pool threads (a civitai preview can be 4K)
        self._loader.loaded.connect(self._on_thumbnail)

    # --- contents ---

    def set_entries(self, entries: Iterable[CatalogueEntry]) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        self._rows = {entry.path: row for row, entry in enumerate(self._entries)}
        self.endResetModel()

    def update_entry(self, entry: CatalogueEntry) -> None:
        row = self._rows.get(entry.path)
        if row is not None:
            self._entries[row] = entry
            self.dataChanged.emit(self.index(row), self.index(row))

    def entries(self) -> list[CatalogueEntry]:
        return list(self._entries)

    def entry(self, path: Path) -> CatalogueEntry | None:
        row = self._rows.get(Path(path))
        return self._entries[row] if row is not None else None

    def set_current_family(self, family: str) -> None:
        """The base of the chosen checkpoint: models for another base are dimmed."""
        if family != self._family:
            self._family = family
            if self._entries:
                self.dataChanged.emit(self.index(0), self.index(len(self._entries) - 1))

    def compatible(self, entry: CatalogueEntry) -> bool | None:
        """True/False when both bases are known, None when either is not."""
        if not self._family or self._family == "unknown" or entry.family == "unknown" or entry.kind == "vae" and entry.family == "sd1":
            return None  # SD1 VAEs also serve SD2; a VAE's family says little
        return entry.family == self._family

    # --- Qt model ---

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        entry = self._entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.name
        if role == self.EntryRole:
            return entry
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(entry)
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(self._tooltip(entry))
        if role == Qt.ItemDataRole.FontRole and self.compatible(entry):
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole and (self.compatible(entry) is False or not is_usable(entry)):
            return QGuiApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        return None

    def _tooltip(self, entry: CatalogueEntry) -> str:
        lines = [entry.name, entry.error or entry.description]
        if self.compatible(entry) is False:
            lines.append(self.tr("Made for another base model than the current checkpoint."))
        if entry.trigger_words:
            lines.append(self.tr("Trigger words: {words}").replace("{words}", ", ".join(entry.trigger_words)))
        if entry.base_model:
            lines.append(self.tr("Base model (civitai): {base}").replace("{base}", entry.base_model))
        lines.append(str(entry.path))
        return "\n".join(line for line in lines if line)

    # --- thumbnails ---

    def _icon(self, entry: CatalogueEntry) -> QIcon:
        if entry.preview is not None:
            key = str(entry.preview)
            icon = self._thumbnails.get(key)
            if icon is not None:
                return icon
            self._loader.request(key, THUMBNAIL * 2)  # a no-op while the same preview is being decoded
        return self._placeholder(entry.kind)

    def _placeholder(self, kind: str) -> QIcon:
        icon = self._placeholders.get(kind)
        if icon is None:
            icon = QIcon(_placeholder_pixmap(_SHORT_LABEL.get(kind, "?")))
            self._placeholders[kind] = icon
        return icon

    @Slot(str, QImage)
    def _on_thumbnail(self, key: str, image: QImage) -> None:
        if image.isNull():
            return  # unreadable preview: the placeholder stays
        self._thumbnails[key] = QIcon(QPixmap.fromImage(image))
        for row, entry in enumerate(self._entries):
            if entry.preview is not None and str(entry.preview) == key:
                self.dataChanged.emit(self.index(row), self.index(row), [Qt.ItemDataRole.DecorationRole])

    def forget_thumbnail(self, preview: Path) -> None:
        """Reload a preview that changed on disk (Set Preview)."""
        self._thumbnails.pop(str(preview), None)


def _placeholder_pixmap(label: str) -> QPixmap:
    pixmap = QPixmap(THUMBNAIL * 2, THUMBNAIL * 2)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    palette = QGuiApplication.palette()
    painter.setBrush(palette.color(QPalette.ColorRole.Mid).lighter(130))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(QRect(8, 8, pixmap.width() - 16, pixmap.height() - 16), 24, 24)
    font = painter.font()
    font.setPixelSize(44)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor(palette.color(QPalette.ColorRole.Text)))
    painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, label)
    painter.end()
    return pixmap


class ModelFilter(QSortFilterProxyModel):
    """One tab's kinds and the search words (all must appear in the name, trigger words, base or description)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._kinds: frozenset[str] | None = frozenset({"checkpoint"})
        self._words: list[str] = []
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortLocaleAware(True)

    def set_kinds(self, kinds: frozenset[str] | None) -> None:
        self.beginFilterChange()
        self._kinds = kinds
        self.endFilterChange()

    def set_search(self, text: str) -> None:
        self.beginFilterChange()
        self._words = text.casefold().split()
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        entry: CatalogueEntry = self.sourceModel().index(source_row, 0, source_parent).data(CatalogueModel.EntryRole)
        if self._kinds is None:
            if is_usable(entry):
                return False
        elif entry.kind not in self._kinds or entry.error:
            return False
        if not self._words:
            return True
        haystack = " ".join((entry.name, *entry.trigger_words, entry.base_model, entry.description)).casefold()
        return all(word in haystack for word in self._words)


class ModelBrowser(QWidget):
    checkpoint_chosen = Signal(str)  # path
    vae_chosen = Signal(str)
    insert_requested = Signal(str)  # prompt text for a network
    set_preview_requested = Signal(object)  # CatalogueEntry
    convert_requested = Signal(str)  # path of a pickle file to convert and install
    files_removed = Signal()
    preferred_vae_changed = Signal(str, str)  # checkpoint path, the VAE's file name ("" for Automatic)
    problem = Signal(str)  # a message for the window's banner (e.g. a name.json that cannot be rewritten)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = CatalogueModel(self)
        self.filter = ModelFilter(self)
        self.filter.setSourceModel(self.model)
        self.filter.sort(0)

        self.tabs = QTabBar()
        self.tabs.setObjectName("model_tabs")
        self.tabs.setExpanding(False)
        self.tabs.setDrawBase(False)
        self.tabs.setUsesScrollButtons(True)
        for _ in TABS:
            self.tabs.addTab("")
        self.search = QLineEdit()
        self.search.setObjectName("model_search")
        self.search.setClearButtonEnabled(True)
        self.grid_button, self.list_button = QToolButton(), QToolButton()
        for button, text in ((self.grid_button, "▦"), (self.list_button, "☰")):
            button.setText(text)
            button.setCheckable(True)
            button.setAutoExclusive(True)
        self.grid_button.setChecked(True)
        self.view = QListView()
        self.view.setObjectName("model_view")
        self.view.setModel(self.filter)
        self.view.setUniformItemSizes(True)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setWordWrap(True)
        self.view.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.status = QLabel()
        self.status.setObjectName("model_status")
        self.status.setTextFormat(Qt.TextFormat.PlainText)

        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.grid_button)
        top.addWidget(self.list_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tabs)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.status)

        self._build_actions()
        self.tabs.currentChanged.connect(self._on_tab)
        self.search.textChanged.connect(self.filter.set_search)
        self.grid_button.toggled.connect(lambda grid: self.set_grid(grid))
        self.view.activated.connect(self._on_activated)
        self.view.clicked.connect(self._on_clicked)
        self.view.customContextMenuRequested.connect(self._show_menu)
        self.filter.rowsInserted.connect(self._update_status)
        self.filter.rowsRemoved.connect(self._update_status)
        self.filter.modelReset.connect(self._update_status)
        self.filter.layoutChanged.connect(self._update_status)
        self._hash_status = ""
        self.full_entry: Callable[[Path], CatalogueEntry | None] | None = None  # the catalogue's complete record
        self.set_grid(True)
        self.retranslate()

    def _build_actions(self) -> None:
        def action(shortcut: str | QKeySequence.StandardKey | None = None) -> QAction:
            return view_action(self.view, shortcut)

        self.use_action = action()
        self.convert_action = action()
        self.reveal_action = action()
        self.set_preview_action = action()
        self.copy_hash_action = action()
        self.copy_sha256_action = action()
        self.details_action = action("Ctrl+I")
        self.trash_action = action("Ctrl+Backspace")
        self.use_action.triggered.connect(lambda: self._with_selected(self._use))
        self.convert_action.triggered.connect(lambda: self._with_selected(lambda e: self.convert_requested.emit(str(e.path))))
        self.reveal_action.triggered.connect(lambda: self._with_selected(reveal_in_file_manager))
        self.set_preview_action.triggered.connect(lambda: self._with_selected(self.set_preview_requested.emit))
        self.copy_hash_action.triggered.connect(lambda: self._with_selected(lambda e: _copy(e.network_hash if e.kind in NETWORK_KINDS else e.model_hash)))
        self.copy_sha256_action.triggered.connect(lambda: self._with_selected(lambda e: _copy(e.sha256)))
        self.details_action.triggered.connect(lambda: self._with_selected(self.show_details))
        self.trash_action.triggered.connect(lambda: self._with_selected(self.move_to_trash))

    def retranslate(self) -> None:
        titles = {
            "checkpoints": self.tr("Checkpoints"),
            "lora": self.tr("LoRA"),
            "embeddings": self.tr("Embeddings"),
            "hypernetworks": self.tr("Hypernetworks"),
            "vae": self.tr("VAE"),
            "other": self.tr("Other"),
        }
        for index, (key, _kinds) in enumerate(TABS):
            self.tabs.setTabText(index, titles[key])
        self.tabs.setTabToolTip(len(TABS) - 1, self.tr("Files the app recognised but cannot use, and why"))
        self.search.setPlaceholderText(self.tr("Search names and trigger words"))
        self.grid_button.setToolTip(self.tr("Thumbnails"))
        self.list_button.setToolTip(self.tr("List"))
        self.reveal_action.setText(self.tr("Reveal in Finder") if sys.platform == "darwin" else self.tr("Show in Folder"))
        self.set_preview_action.setText(self.tr("Set Preview from Selected Image"))
        self.copy_hash_action.setText(self.tr("Copy Hash"))
        self.copy_sha256_action.setText(self.tr("Copy SHA-256"))
        self.convert_action.setText(self.tr("Convert to .safetensors"))
        self.details_action.setText(self.tr("Show Details…"))
        self.trash_action.setText(self.tr("Move to Trash…"))
        self._update_status()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    # --- public ---

    def set_entries(self, entries: Iterable[CatalogueEntry]) -> None:
        selected = self.selected_entry()
        self.model.set_entries(entries)
        if selected is not None:
            self.select(selected.path)

    def update_entry(self, entry: CatalogueEntry) -> None:
        self.model.update_entry(entry)

    def set_current_family(self, family: str) -> None:
        self.model.set_current_family(family)

    def show_tab(self, key: str) -> None:
        self.tabs.setCurrentIndex([name for name, _ in TABS].index(key))

    def set_grid(self, grid: bool) -> None:
        if grid:
            self.view.setViewMode(QListView.ViewMode.IconMode)
            self.view.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
            self.view.setGridSize(QSize(THUMBNAIL + 24, THUMBNAIL + 44))
            self.view.setSpacing(4)
        else:
            self.view.setViewMode(QListView.ViewMode.ListMode)
            self.view.setIconSize(QSize(28, 28))
            self.view.setGridSize(QSize())
            self.view.setSpacing(1)
        self.grid_button.setChecked(grid)
        self.list_button.setChecked(not grid)

    def is_grid(self) -> bool:
        return self.view.viewMode() == QListView.ViewMode.IconMode

    def selected_entry(self) -> CatalogueEntry | None:
        index = self.view.currentIndex()
        return index.data(CatalogueModel.EntryRole) if index.isValid() else None

    def select(self, path: Path) -> bool:
        for row in range(self.filter.rowCount()):
            index = self.filter.index(row, 0)
            if index.data(CatalogueModel.EntryRole).path == Path(path):
                self.view.setCurrentIndex(index)
                self.view.scrollTo(index)
                return True
        return False

    def set_hash_status(self, text: str) -> None:
        self._hash_status = text
        self._update_status()

    # --- actions ---

    def _on_tab(self, index: int) -> None:
        self.filter.set_kinds(TABS[index][1])
        self._update_status()

    def _on_activated(self, index: QModelIndex) -> None:
        entry = index.data(CatalogueModel.EntryRole)
        if entry is not None and entry.kind not in NETWORK_KINDS:  # networks act on a single click
            self._use(entry)

    def _on_clicked(self, index: QModelIndex) -> None:
        entry = index.data(CatalogueModel.EntryRole)
        if entry is not None and entry.kind in NETWORK_KINDS and is_usable(entry):
            self.insert_requested.emit(prompt_text_for(entry))

    def _use(self, entry: CatalogueEntry) -> None:
        if not is_usable(entry):
            self.show_details(entry)
        elif entry.kind == "checkpoint":
            self.checkpoint_chosen.emit(str(entry.path))
        elif entry.kind == "vae":
            self.vae_chosen.emit(str(entry.path))
        else:
            self.insert_requested.emit(prompt_text_for(entry))

    def _with_selected(self, action) -> None:  # noqa: ANN001
        entry = self.selected_entry()
        if entry is not None:
            action(entry)

    def _show_menu(self, position: QPoint) -> None:
        index = self.view.indexAt(position)
        if not index.isValid():
            return
        self.view.setCurrentIndex(index)
        entry: CatalogueEntry = index.data(CatalogueModel.EntryRole)
        uses = {"checkpoint": self.tr("Use This Checkpoint"), "vae": self.tr("Use This VAE")}
        self.use_action.setText(uses.get(entry.kind, self.tr("Insert into Prompt")))
        self.use_action.setEnabled(is_usable(entry))
        self.copy_hash_action.setEnabled(entry.hashed and not entry.is_folder)
        self.copy_sha256_action.setEnabled(bool(entry.sha256))
        menu = QMenu(self)
        menu.addAction(self.use_action)
        self._vae_menu: QMenu | None = None
        if entry.kind == "checkpoint" and is_usable(entry):
            self._vae_menu = self._preferred_vae_menu(entry, menu)
            menu.addMenu(self._vae_menu)
        if entry.path.suffix.lower() in PICKLE_SUFFIXES:
            menu.addAction(self.convert_action)
        menu.addSeparator()
        menu.addAction(self.reveal_action)
        menu.addAction(self.set_preview_action)
        menu.addAction(self.copy_hash_action)
        menu.addAction(self.copy_sha256_action)
        menu.addAction(self.details_action)
        menu.addSeparator()
        menu.addAction(self.trash_action)
        menu.popup(self.view.viewport().mapToGlobal(position))
        self._menu = menu  # the tests look at it; Qt owns it through the parent

    def _preferred_vae_menu(self, entry: CatalogueEntry, parent: QMenu) -> QMenu:
        """"Automatic (none)", then every usable VAE; the checkpoint's current preference is checked."""
        menu = QMenu(self.tr("Preferred VAE"), parent)
        menu.setObjectName("preferred_vae_menu")
        menu.setToolTipsVisible(True)
        group = QActionGroup(menu)
        group.setExclusive(True)
        vaes = sorted((e for e in self.model.entries() if e.kind == "vae" and is_usable(e)), key=lambda e: e.name.casefold())
        current = read_preferred_vae(entry.path)
        chosen = resolve_vae_name(current, [vae.path for vae in vaes])

        def add(text: str, vae_name: str, *, checked: bool, tooltip: str = "") -> QAction:
            action = menu.addAction(text)  # "&" in a file name is doubled by the caller: shown, not a mnemonic
            action.setCheckable(True)
            action.setChecked(checked)
            action.setData(vae_name)
            action.setToolTip(tooltip or text)
            group.addAction(action)
            if not checked:  # choosing the current preference again changes nothing (a "None" stays "None")
                action.triggered.connect(lambda _checked=False, name=vae_name: self.set_preferred_vae(entry, name))
            return action

        add(
            self.tr("Automatic (none)"),
            "",
            checked=not current or current == VAE_NONE,
            tooltip=self.tr("No preference: the VAE baked into the checkpoint"),
        )
        if current and current != VAE_NONE and chosen is None:  # named in name.json, not installed
            text = self.tr("{name} (not installed)").replace("{name}", current)
            missing = add(text.replace("&", "&&"), current, checked=True, tooltip=text)
            missing.setEnabled(False)
        if vaes:
            menu.addSeparator()
        for vae in vaes:
            add(vae.name.replace("&", "&&"), vae.path.name, checked=vae.path == chosen, tooltip=str(vae.path))
        return menu

    def set_preferred_vae(self, entry: CatalogueEntry, vae_name: str) -> bool:
        """Write the checkpoint's preferred VAE into its ``name.json`` (a small file: written at once)."""
        try:
            write_preferred_vae(entry.path, vae_name)
        except DesktopError as error:
            self.problem.emit(str(error))
            return False
        self.preferred_vae_changed.emit(str(entry.path), vae_name)
        return True

    def show_details(self, entry: CatalogueEntry) -> QDialog:
        if self.full_entry is not None:
            entry = self.full_entry(entry.path) or entry  # lists leave the (large) metadata out
        dialog = ModelDetailsDialog(entry, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def move_to_trash(self, entry: CatalogueEntry, *, confirm: bool = True) -> bool:
        """Move the model and its sidecars to the Trash; where there is none, delete only after asking again."""
        if confirm:
            answer = QMessageBox.question(
                self,
                self.tr("Move to Trash"),
                self.tr("Move {name} and its preview and notes to the Trash?").replace("{name}", entry.path.name),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        from desktop.ui.file_actions import move_to_trash

        removed = move_to_trash(self, [entry.path, *sidecar_files(entry)])
        if removed:
            self.files_removed.emit()
        return removed

    def _update_status(self, *_args: object) -> None:
        shown = self.filter.rowCount()
        text = self.tr("{count} model(s)").replace("{count}", str(shown))
        if self._hash_status:
            text += " · " + self._hash_status
        self.status.setText(text)


def sidecar_files(entry: CatalogueEntry) -> list[Path]:
    """The files A1111 keeps next to a model that belong to it (they go to the Trash with it)."""
    stem = entry.path.with_suffix("") if not entry.is_folder else entry.path
    candidates = [Path(f"{stem}{suffix}") for suffix in (".preview.png", ".png", ".civitai.info", ".json", ".txt")]
    if entry.preview is not None:
        candidates.append(entry.preview)
    return sorted({path for path in candidates if path.is_file()})


def reveal_in_file_manager(entry: CatalogueEntry) -> None:
    reveal_file(entry.path)


def _copy(text: str) -> None:
    if text:
        QGuiApplication.clipboard().setText(text)


class ModelDetailsDialog(QDialog):
    """Everything known about a model, as plain text the user can select and copy."""

    def __init__(self, entry: CatalogueEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.setObjectName("model_details")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setPlainText(details_text(entry))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.setWindowTitle(entry.name)
        self.resize(620, 520)


def details_text(entry: CatalogueEntry) -> str:
    from PySide6.QtCore import QCoreApplication, QLocale

    translate = QCoreApplication.translate  # a literal context: lupdate cannot follow a tr passed in

    pending = translate("ModelDetails", "(computing…)")
    rows = [
        (translate("ModelDetails", "Name"), entry.name),
        (translate("ModelDetails", "What it is"), entry.error or entry.description),
        (translate("ModelDetails", "Kind"), entry.kind),
        (translate("ModelDetails", "Base"), entry.family),
        (translate("ModelDetails", "Size"), QLocale().formattedDataSize(entry.size)),
        (translate("ModelDetails", "File"), str(entry.path)),
        (translate("ModelDetails", "Model hash (AutoV2)"), entry.model_hash or pending),
        (translate("ModelDetails", "SHA-256"), entry.sha256 or pending),
    ]
    if entry.tensor_hash:
        rows.append((translate("ModelDetails", "Network hash (Lora/TI hashes)"), entry.network_hash))
    if entry.legacy_hash:
        rows.append((translate("ModelDetails", "Legacy hash"), entry.legacy_hash))
    if entry.trigger_words:
        rows.append((translate("ModelDetails", "Trigger words"), ", ".join(entry.trigger_words)))
    if entry.base_model:
        rows.append((translate("ModelDetails", "Base model (civitai)"), entry.base_model))
    if entry.civitai_url:
        rows.append((translate("ModelDetails", "civitai page"), entry.civitai_url))
    lines = [f"{label}: {value}" for label, value in rows]
    if entry.notes:
        lines += ["", translate("ModelDetails", "Notes"), entry.notes]
    if entry.reasons:
        lines += ["", translate("ModelDetails", "How it was recognised")] + [f"• {reason}" for reason in entry.reasons]
    if entry.metadata:
        lines += ["", translate("ModelDetails", "Metadata in the file")] + [f"{key}: {value}" for key, value in entry.metadata]
    return "\n".join(lines)
