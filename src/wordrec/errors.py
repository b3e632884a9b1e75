"""Errors that stages report as one clear line (file/key and what was expected) instead of a traceback."""


class WordrecError(Exception):
    """Base class: a problem with the user's input, not a bug."""


class ConfigError(WordrecError, ValueError):
    """A config file or override is not what the pipeline expects."""


class DataError(WordrecError, ValueError):
    """An input file (image, label list, LMDB, font, model) is missing or malformed."""


class OutputError(WordrecError, OSError):
    """An output could not be written: disk full, quota or file-size limit (nothing half-written is left)."""


def one_line(e: Exception) -> str:
    """The message every entry point prints after `error: `: one line, whatever the library underneath said
    (Hydra, gcc and onnxruntime messages span several)."""
    return " | ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
