"""Errors that stages report as one clear line (file/key and what was expected) instead of a traceback."""


class WordrecError(Exception):
    """Base class: a problem with the user's input, not a bug."""


class ConfigError(WordrecError, ValueError):
    """A config file or override is not what the pipeline expects."""


class DataError(WordrecError, ValueError):
    """An input file (image, label list, LMDB, font, model) is missing or malformed."""
