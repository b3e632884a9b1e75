"""Synthetic word-image generation (fonts, text sources, rendering, BDA augmentation)."""
