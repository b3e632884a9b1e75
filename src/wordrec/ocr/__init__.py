"""Whole-image OCR: PP-OCRv4 text-line detection, perspective crops, a recognizer per line, end-to-end metrics.

    detect    Detector (PP-OCRv4 det ONNX + DB post-processing on OpenCV)
    crop      quadrilateral -> upright line image
    pipeline  read_image(detector, recognizer, rgb) -> [{"box", "text", "confidence", "det_score"}]
    pages     synthetic pages/photos with known line boxes and text
    evaluate  detection P/R/F1 (quad IoU >= 0.5), line CER/WER, pages/s
    peers     RapidOCR's and Tesseract's full-page pipelines, same output structure
    cli       wordrec-ocr
"""
