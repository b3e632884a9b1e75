"""Text-line detection with PaddleOCR's PP-OCRv4 detector (ONNX) and DB post-processing written on OpenCV.

Reads the detector ONNX (default: the one inside the installed `rapidocr_onnxruntime` wheel) and RGB uint8 images;
writes nothing. `Detector(...)(rgb)` returns `(boxes, scores)`: 4x2 float32 quadrilaterals in image pixels,
clockwise from top-left, sorted top-to-bottom then left-to-right, and their mean probabilities.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from wordrec.errors import ConfigError, DataError

# PaddleOCR's det NormalizeImage (ImageNet mean/std, applied to the BGR image as cv2 decodes it, which is how the
# PP-OCR detectors were trained). rapidocr_onnxruntime 1.4.4 ships (0.5, 0.5) instead; docs/ocr.md compares both.
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
DET_FILE = "ch_PP-OCRv4_det_infer.onnx"


DET_DIR = Path("models/detect/ppocrv4")  # the `pretrained` stage's copy (params pretrained.detectors)
MIN_SHORT_SIDE = 32  # px: an image scaled to fit max_side with a shorter short side is refused (text illegible)


def default_det_path() -> Path:
    """The PP-OCRv4 detector: the `pretrained` stage's models/detect/ppocrv4 (relative to the working directory,
    as stages and wordrec-ocr run from the repository), else the one inside the installed rapidocr_onnxruntime
    wheel (ConfigError if neither is there)."""
    if (DET_DIR / "model.onnx").is_file():
        return DET_DIR / "model.onnx"
    try:
        import importlib.util

        spec = importlib.util.find_spec("rapidocr_onnxruntime")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise ConfigError(f"--det: no detector given, no {DET_DIR} (run the pretrained stage) and "
                          "rapidocr_onnxruntime is not installed (or pass --det path/to/{DET_FILE})")
    path = Path(spec.origin).parent / "models" / DET_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: not found in the installed rapidocr_onnxruntime wheel; pass --det explicitly")
    return path


def det_model_path(path: str | Path) -> Path:
    """A detector ONNX file, or a detector dir (model.onnx + a DetectorMeta meta.json) -> the ONNX file."""
    from wordrec.models.meta import DetectorMeta

    path = Path(path)
    if not path.is_dir():
        return path
    try:
        DetectorMeta.load(path)
    except DataError as e:
        raise ConfigError(str(e)) from None
    return path / "model.onnx"


def order_clockwise(pts: np.ndarray) -> np.ndarray:
    """4x2 points -> clockwise (image coordinates, y down) starting at the top-left corner.

    The start is the corner whose outgoing edge points most nearly to the right (the top edge of a line); unlike
    sorting by x then y this stays a valid clockwise polygon at any rotation."""
    pts = np.asarray(pts, np.float32).reshape(4, 2)
    c = pts.mean(0)
    pts = pts[np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]))]  # increasing angle = clockwise, y down
    edges = np.roll(pts, -1, 0) - pts
    start = int(np.argmin(np.abs(np.arctan2(edges[:, 1], edges[:, 0]))))
    return np.roll(pts, -start, 0)


def sort_boxes(boxes: list[np.ndarray], scores: list[float]) -> tuple[list[np.ndarray], list[float]]:
    """Reading order: by top-left y, then left to right among boxes whose tops are within half a line height."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0, 1], boxes[i][0, 0]))
    # One insertion pass as PaddleOCR does: neighbours on the same visual line are ordered by x.
    for i in range(len(order) - 1):
        for j in range(i, -1, -1):
            a, b = boxes[order[j]], boxes[order[j + 1]]
            tol = 0.5 * min(np.linalg.norm(a[3] - a[0]), np.linalg.norm(b[3] - b[0]))
            if abs(b[0, 1] - a[0, 1]) < tol and b[0, 0] < a[0, 0]:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return [boxes[i] for i in order], [scores[i] for i in order]


def unclip_rect(rect, ratio: float):
    """Grow a cv2 rotated rect by DB's offset distance d = area * ratio / perimeter on every side.

    DB offsets the shrunk polygon with round joins and takes the min-area rectangle of the result; for a rectangle
    input that rectangle is exactly the same rectangle with both sides longer by 2d, so no polygon clipper is needed."""
    (cx, cy), (w, h), angle = rect
    d = w * h * ratio / max(2.0 * (w + h), 1e-6)
    return (cx, cy), (w + 2 * d, h + 2 * d), angle


def box_score(prob: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside the polygon (DB's 'fast' score), computed on the bounding crop only."""
    h, w = prob.shape
    x0, y0 = np.clip(np.floor(box.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(box.max(0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(box - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])


def db_postprocess(prob: np.ndarray, out_hw: tuple[int, int], thresh: float = 0.3, box_thresh: float = 0.6,
                   unclip_ratio: float = 1.6, min_size: float = 3, max_candidates: int = 1000
                   ) -> tuple[list[np.ndarray], list[float]]:
    """DB probability map (H x W, values in [0, 1]) -> boxes scaled to an `out_hw` image, and their scores."""
    ph, pw = prob.shape
    sy, sx = out_hw[0] / ph, out_hw[1] / pw
    contours, _ = cv2.findContours((prob > thresh).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores = [], []
    for contour in contours[:max_candidates]:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < min_size:
            continue
        score = box_score(prob, cv2.boxPoints(rect))
        if score < box_thresh:
            continue
        grown = unclip_rect(rect, unclip_ratio)
        if min(grown[1]) < min_size + 2:
            continue
        box = cv2.boxPoints(grown) * [sx, sy]
        box[:, 0] = box[:, 0].clip(0, out_hw[1])
        box[:, 1] = box[:, 1].clip(0, out_hw[0])
        boxes.append(order_clockwise(box))
        scores.append(score)
    return sort_boxes(boxes, scores)


class Detector:
    """PP-OCRv4 text-line detector: `Detector(path)(rgb) -> (boxes, scores)`.

    Images whose longer side exceeds `max_side` raise DataError (they would be shrunk past legibility to reach
    `limit_side`, and decoding them costs memory) unless `resize`: then `fit` scales them down to `max_side` first
    (a 4032x3024 phone photo), and refuses only those whose short side would fall under MIN_SHORT_SIDE (a
    20000x30 strip: any text on it would be illegible). Images with no text give two empty lists.
    `onnx_path`: an ONNX file or a detector dir (models/detect/<name>, from the pretrained stage)."""

    def __init__(self, onnx_path: str | Path | None = None, threads: int = 1, limit_side: int = 960,
                 thresh: float = 0.3, box_thresh: float = 0.6, unclip_ratio: float = 1.6, min_size: float = 3,
                 max_side: int = 4000, norm=IMAGENET, resize: bool = False):
        import onnxruntime as ort

        if max_side < MIN_SHORT_SIDE:
            raise ConfigError(f"max_side={max_side}: expected at least {MIN_SHORT_SIDE} px")
        self.path = det_model_path(onnx_path) if onnx_path else default_det_path()
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: detector ONNX not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise ConfigError(f"{self.path}: not a loadable ONNX detector ({type(e).__name__})") from None
        self.input = self.session.get_inputs()[0].name
        self.limit_side, self.max_side, self.resize = limit_side, max_side, resize
        self.post = dict(thresh=thresh, box_thresh=box_thresh, unclip_ratio=unclip_ratio, min_size=min_size)
        self.mean, self.std = (np.array(v, np.float32) for v in norm)

    def check(self, rgb: np.ndarray, where: str = "image") -> None:
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise DataError(f"{where}: expected an RGB uint8 H x W x 3 array, got "
                            f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}")
        h, w = rgb.shape[:2]
        if min(h, w) < 1:
            raise DataError(f"{where}: empty image ({w}x{h})")
        if max(h, w) > self.max_side:
            raise DataError(f"{where}: {w}x{h} px is larger than max_side={self.max_side}; downscale it first "
                            "(or let the detector: resize=True, wordrec-ocr --resize)")

    def fit(self, rgb: np.ndarray, where: str = "image") -> tuple[np.ndarray, float]:
        """(image, scale): unchanged (1.0) when its longer side is within max_side; with `resize`, scaled down so it
        is (INTER_AREA), unless its short side would fall under MIN_SHORT_SIDE px. Otherwise `check`'s DataError."""
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3:
            self.check(rgb, where)
        h, w = rgb.shape[:2]
        if max(h, w) <= self.max_side or not self.resize or min(h, w) < 1:
            self.check(rgb, where)
            return rgb, 1.0
        scale = self.max_side / max(h, w)
        if min(h, w) * scale < MIN_SHORT_SIDE:
            raise DataError(f"{where}: {w}x{h} px: scaled to max_side={self.max_side} its short side would be "
                            f"{min(h, w) * scale:.0f} px (< {MIN_SHORT_SIDE}): aspect ratio "
                            f"{max(h, w) / min(h, w):.0f}:1 is too extreme to read; crop it first")
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        self.check(small, where)
        return small, scale

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """RGB -> 1x3xHxW float32: long side <= limit_side, sides multiples of 32 (at least 32), BGR, normalised."""
        h, w = rgb.shape[:2]
        r = min(1.0, self.limit_side / max(h, w))
        rh, rw = (max(32, int(round(s * r / 32)) * 32) for s in (h, w))
        x = cv2.resize(rgb[:, :, ::-1], (rw, rh)).astype(np.float32) / 255.0
        return ((x - self.mean) / self.std).transpose(2, 0, 1)[None]

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """The DB probability map at the network's resolution (H x W float32)."""
        return self.session.run(None, {self.input: self.preprocess(rgb)})[0][0, 0]

    def __call__(self, rgb: np.ndarray, where: str = "image") -> tuple[list[np.ndarray], list[float]]:
        self.check(rgb, where)
        return db_postprocess(self.probability(rgb), rgb.shape[:2], **self.post)
