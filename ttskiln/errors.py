"""Errors a user can act on: each names the model (when known) and the problem."""

from __future__ import annotations


class TtskilnError(Exception):
    """Base class: the message is shown to the user as is."""


class ConfigError(TtskilnError):
    """The YAML configuration asks for something impossible."""


class CheckpointError(TtskilnError):
    """A checkpoint is missing, malformed, or of another architecture."""


class InputError(TtskilnError):
    """Inputs (sample_inputs, parity inputs) have the wrong names or shapes."""


class ValidationFailed(TtskilnError):
    """An artifact broke its tolerances."""


def for_model(model: str, exc: TtskilnError) -> TtskilnError:
    """The same error, its message prefixed with the model name."""
    prefix = f"model '{model}': "
    message = str(exc)
    if message.startswith(prefix):
        return exc
    return type(exc)(prefix + message)
