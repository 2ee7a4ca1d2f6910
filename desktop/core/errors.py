"""Typed errors with a stable code, a plain English message and the facts behind it.

The code and details let the UI translate the message; the CLI maps the class to an exit status:
anything the user can fix by changing their input is a :class:`UserInputError` (exit 2).
"""

from __future__ import annotations


class DesktopError(Exception):
    """Base of all errors the app reports to the user."""

    code = "error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class UserInputError(DesktopError):
    """The request or a file the user chose is wrong; fixing the input fixes it."""

    code = "bad_input"


class InvalidRequest(UserInputError):
    """A generation parameter is out of range or unknown (size, steps, sampler...)."""

    code = "invalid_request"


class ModelFileError(UserInputError):
    """A model file cannot be read: missing, not safetensors, truncated, corrupt."""

    code = "model_file"


class UnsupportedModel(UserInputError):
    """The file is recognised, but it is not something this action can use (names what it is)."""

    code = "unsupported_model"


class GenerationError(DesktopError):
    """Generation failed for a reason that is not the user's input (NaNs, out of memory...)."""

    code = "generation"
