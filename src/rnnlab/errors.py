"""Typed errors. Every message names what was expected and what was given.

All derive from :class:`RnnlabError`, so a caller (and the CLI) can catch one type. Each also
derives from the built-in it refines (``ValueError``/``TypeError``/``FileNotFoundError``), so
code written against ``torch.nn`` that catches those keeps working.
"""


class RnnlabError(Exception):
    """Base class of every error rnnlab raises on purpose."""


class InputShapeError(RnnlabError, ValueError):
    """An input tensor has the wrong rank, feature size or dtype."""


class LengthsError(RnnlabError, ValueError):
    """``lengths`` are zero, negative, longer than the sequence or of the wrong shape."""


class StateError(RnnlabError, ValueError):
    """An initial state has the wrong shape, dtype or structure."""


class StateDictError(RnnlabError, ValueError):
    """A state_dict does not fit the module (missing, unexpected or differently sized tensors)."""


class ConfigError(RnnlabError, ValueError):
    """A constructor or command-line option is invalid or contradicts another."""


class DataError(RnnlabError, ValueError):
    """Data on disk or in memory cannot be used as given (missing column, bad values, too short)."""


class RunDirError(RnnlabError, FileNotFoundError):
    """A run directory or checkpoint is missing, empty, of an unknown kind or of a newer format."""


class NonFiniteLossError(RnnlabError, FloatingPointError):
    """Training produced a NaN or infinite loss."""
