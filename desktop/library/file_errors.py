"""One wording for the ways a model file cannot be read, shared by every reader in the library."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from desktop.core.errors import ModelFileError


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn OS errors raised while reading ``path`` into a :class:`ModelFileError` naming the file.

    A cancel (``InterruptedError``) is an ``OSError`` too, but not a read failure: it passes through.
    """
    try:
        yield
    except InterruptedError:
        raise
    except FileNotFoundError:
        raise ModelFileError(f"{path.name} does not exist ({path})", path=str(path), reason="missing") from None
    except OSError as exc:
        raise ModelFileError(
            f"{path.name} cannot be read: {exc.strerror or exc}", path=str(path), reason="unreadable"
        ) from exc
