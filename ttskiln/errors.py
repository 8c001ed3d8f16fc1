"""Errors a user can act on: each names the model (when known) and the problem."""

from __future__ import annotations

import re

#: Terminal colour and cursor codes some libraries put in their messages.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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


def one_line(message: BaseException | str, limit: int = 300) -> str:
    """A message on one line for a user: terminal colour codes removed, lines and runs of
    whitespace joined, at most ``limit`` characters."""
    text = " ".join(ANSI_ESCAPE.sub("", str(message)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
