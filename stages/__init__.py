"""Stage scripts (one per DVC stage): wiring only; `python stages/<name>.py` under DVC, `stages.<name>` in tests."""
