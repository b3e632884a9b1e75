"""Bare-metal Cortex-M55 application around the generated runner, and its runs on Corstone-300 simulators."""
