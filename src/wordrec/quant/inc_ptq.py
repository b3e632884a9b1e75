"""Intel Neural Compressor 3.x static post-training quantization of a torch recognizer (PT2E path).

torch.export -> INC `prepare` (torchao X86 inductor quantizer) -> calibration -> `convert`. Conv/Linear become
INT8; LSTM stays FP32 (NOTES). The graph is exported with a dynamic batch so one artefact serves every batch in
eager mode; for speed it is `torch.compile`d per static batch shape (a dynamic batch failed in inductor).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np


def _batch_dim():
    import torch

    return ({0: torch.export.Dim("batch", min=1, max=4096)},)


def quantize(module, calib: np.ndarray, batch: int = 8):
    """FP32 probs module -> INT8 GraphModule calibrated on `calib` (N x C x H x W)."""
    import torch
    from neural_compressor.torch.export import export
    from neural_compressor.torch.quantization import StaticQuantConfig, convert, prepare

    # INC sets its logger to INFO on import and then logs every rewrite pass; keep warnings only.
    logging.getLogger("neural_compressor").setLevel(logging.WARNING)
    x = torch.from_numpy(np.ascontiguousarray(calib))
    exported = export(module.eval(), (x[:batch],), dynamic_shapes=_batch_dim())
    prepared = prepare(exported, StaticQuantConfig())
    with torch.no_grad():
        for i in range(0, len(x), batch):
            prepared(x[i:i + batch])
    return convert(prepared)


def save(q_model, example: np.ndarray, path: Path) -> Path:
    """torch.export archive (.pt2) of the quantized graph; `load` restores it without INC."""
    import torch

    ep = torch.export.export(q_model, (torch.from_numpy(example),), dynamic_shapes=_batch_dim())
    torch.export.save(ep, str(path))
    return path


def load(path: Path, compile_model: bool = False):
    import torch
    import torchao.quantization.pt2e  # noqa: F401  registers the quantized_decomposed ops the archive refers to

    module = torch.export.load(str(path)).module()
    return torch.compile(module, dynamic=False) if compile_model else module
