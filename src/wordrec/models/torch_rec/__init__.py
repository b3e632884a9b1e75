"""PyTorch recognizers (CRNN, conv-only CRNN-lite): models, data pipeline and training."""
