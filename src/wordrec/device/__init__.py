"""Device: TVM compilation for the Cortex-M55 (compile/), the bare-metal board build and simulator runs (board/), and
the project's int8 kernel library (kernels/ wrnn: Helium + scalar C; int8_ref numpy model; int8_host/int8_qemu)."""
