"""Settings on disk (QSettings, ini format) with typed access; a damaged file is set aside, not fatal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QByteArray, QSettings

from desktop.core.settings import SETTINGS_VERSION, Setting

T = TypeVar("T")
_VERSION_KEY = "meta/version"


class SettingsStore:
    """Typed get/set over one ini file.

    A file Qt cannot parse, or one without our version stamp, is renamed to
    ``settings.ini.corrupt-<time>`` and the defaults load; ``set_aside`` tells the UI so it can say so.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.set_aside: Path | None = None
        self._qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)
        if self._is_damaged():
            self._qsettings = None  # release the file before renaming it
            self.set_aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            self.path.replace(self.set_aside)
            self._qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)
        self._qsettings.setValue(_VERSION_KEY, SETTINGS_VERSION)

    def _is_damaged(self) -> bool:
        if self._qsettings.status() != QSettings.Status.NoError:
            return True
        exists = self.path.exists() and self.path.stat().st_size > 0
        return exists and not self._qsettings.contains(_VERSION_KEY)

    def get(self, setting: Setting[T]) -> T:
        raw = self._qsettings.value(setting.key)
        return setting.default if raw is None else setting.coerce(raw)

    def set(self, setting: Setting[T], value: T) -> None:
        self._qsettings.setValue(setting.key, list(value) if isinstance(value, tuple) else value)

    def get_bytes(self, key: str) -> QByteArray | None:
        """Window geometry and splitter states (opaque Qt blobs)."""
        value = self._qsettings.value(key)
        return value if isinstance(value, QByteArray) else None

    def set_bytes(self, key: str, value: QByteArray) -> None:
        self._qsettings.setValue(key, value)

    def sync(self) -> None:
        self._qsettings.sync()
