"""Device: TVM compilation for the Cortex-M55 (compile/) and the bare-metal board build and simulator runs (board/)."""
