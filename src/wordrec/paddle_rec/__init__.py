"""PaddlePaddle PP-OCRv3-style recognizer (issue 4): `model` (architecture), `data` (LMDB dataset), `train.fit`,
`export` (PaddleOCR inference dir, ONNX with a parity gate) and `recognizer` (backend for `wordrec.recognizer`)."""
