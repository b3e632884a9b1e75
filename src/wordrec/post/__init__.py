"""Post-training: ONNX export, INT8 quantization (INC, NNCF), benchmarking and peer recognizers."""
