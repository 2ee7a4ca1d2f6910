"""The user's files in Finder: revealing them, and removing them (to the Trash, and only after a second
question where there is no Trash)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QFile, QProcess, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget


def move_to_trash(parent: QWidget | None, paths: Sequence[Path], *, ask=None) -> bool:  # noqa: ANN001
    """Trash ``paths`` (the first is the main file); True when every one is gone.

    ``QFile.moveToTrash`` fails on volumes without a Trash (network shares, some external disks,
    Linux without a desktop): then the user is asked whether to delete them permanently (BAD_INPUTS
    35). ``ask(title, text) -> bool`` replaces that dialog in tests.
    """
    left: list[Path] = []
    for path in paths:
        if not path.exists() and not path.is_symlink():
            continue
        trashed, _where = QFile.moveToTrash(str(path))
        if not trashed:
            left.append(path)
    if not left:
        return True
    translate = QCoreApplication.translate
    title = translate("FileActions", "Delete Permanently?")
    text = translate(
        "FileActions", "{name} cannot be moved to the Trash on this disk. Delete it permanently? This cannot be undone."
    ).replace("{name}", left[0].name)
    if ask is None:
        answer = QMessageBox.warning(
            parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel
        )
        confirmed = answer == QMessageBox.StandardButton.Yes
    else:
        confirmed = ask(title, text)
    if not confirmed:
        return False
    for path in left:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)  # a diffusers folder
            else:
                path.unlink()
        except OSError as error:
            QMessageBox.warning(
                parent,
                translate("FileActions", "Could Not Delete"),
                translate("FileActions", "{name} could not be deleted: {error}")
                .replace("{name}", path.name)
                .replace("{error}", error.strerror or str(error)),
            )
            return False
    return True


def reveal_file(path: Path) -> None:
    """Show ``path`` in Finder (selected), or its folder in the file manager elsewhere."""
    if sys.platform == "darwin":
        QProcess.startDetached("open", ["-R", str(path)])
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))
