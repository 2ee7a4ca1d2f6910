"""Cancellation shared between the thread that asks and the thread that works.

The UI sets the token directly (not through a queued signal, which would only arrive after the
job ends); the sampler checks it once per step.
"""

from __future__ import annotations

import threading


class CancelToken:
    """A thread-safe flag: ``cancel()`` from anywhere, ``is_set()`` / ``raise_if_cancelled()`` in the worker."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class Cancelled(Exception):
    """Unwinds a job the user cancelled. An outcome, not an error: callers turn it into a result."""
