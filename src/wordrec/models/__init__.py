"""Models: the one model-meta schema (meta.py), training utilities, and each framework's architectures + trainer."""
