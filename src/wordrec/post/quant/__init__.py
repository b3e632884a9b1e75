"""Post-training INT8 quantization backends: Intel Neural Compressor (torch PT2E) and NNCF (OpenVINO IR, ONNX QDQ)."""
