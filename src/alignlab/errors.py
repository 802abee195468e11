"""The error users see: a message that says what happened, where, and what to do next.

The CLI prints an `AlignlabError` as one clean message (no traceback) and exits non-zero;
anything else is a bug and keeps its traceback.
"""


class AlignlabError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class ConfigError(AlignlabError, ValueError):
    """alignlab.yaml (or a recipe) is invalid; the message carries file:line.

    A ValueError too, so pydantic validators can raise it and keep the field's position."""


class StoreError(AlignlabError):
    """The run directory cannot be written (disk full, read-only); earlier outputs stay valid."""


class BackendError(AlignlabError):
    """A model cannot be reached or loaded; the message names the model and what to check."""


class ServerUnreachable(BackendError):
    """No connection to a model server at all (nothing listens there, or no route to it)."""
