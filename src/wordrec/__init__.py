"""wordrec: word-image recognizers from synthetic data to a Cortex-M55 (shared library for the DVC stages)."""

__version__ = "0.1.0"
