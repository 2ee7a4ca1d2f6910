"""A guard on the pinned PySide6: 6.12.0 dropped a reference to True on every Python-side emit and
to None on every void method call, which aborts Python 3.10/3.11 ("bool_dealloc") after a few
thousand calls. The pinned version must keep both counts whole."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Source(QObject):
    changed = Signal(str, int)


def test_signal_emits_and_void_calls_keep_reference_counts_whole(qtbot):
    source = _Source()
    received: list[int] = []
    source.changed.connect(lambda _text, number: received.append(number))
    true_before, none_before = sys.getrefcount(True), sys.getrefcount(None)
    for number in range(3_000):
        source.changed.emit("x", number)
        source.setObjectName("source")  # returns None
    assert len(received) == 3_000
    assert sys.getrefcount(True) - true_before > -10
    assert sys.getrefcount(None) - none_before > -10
