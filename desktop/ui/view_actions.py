"""Actions of an item view (model browser, gallery): owned by the view, their shortcuts live while it has focus."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QAbstractItemView


def view_action(view: QAbstractItemView, shortcut: str | QKeySequence.StandardKey | None = None) -> QAction:
    """An action for ``view``'s context menu; with a shortcut, active only when the view (or a child) has focus."""
    item = QAction(view)
    if shortcut is not None:
        item.setShortcut(QKeySequence(shortcut))
        item.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        view.addAction(item)
    return item
