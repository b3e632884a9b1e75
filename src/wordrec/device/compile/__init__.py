"""ONNX -> TVM Relax -> (host llvm module, C sources + a generated static-arena runner for the Cortex-M55).

apache-tvm 0.27 is Relax-only (no microTVM/AOT/CRT), so the AOT "main" is generated here from Relax's own
static memory plan; see docs/mcu.md.
"""
