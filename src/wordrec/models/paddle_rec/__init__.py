"""PaddlePaddle PP-OCRv3-style recognizer: `model` (architecture), `data` (LMDB dataset), `train.fit`, `export`
(PaddleOCR inference dir, its dictionary check, ONNX conversion). Served by `wordrec.infer.runners.PaddleRunner`."""
