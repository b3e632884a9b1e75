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


def first_conv_name(module) -> str | None:
    import torch

    return next((n for n, m in module.named_modules() if isinstance(m, torch.nn.Conv2d)), None)


def quantize(module, calib: np.ndarray, batch: int = 8, float_first_conv: bool = False):
    """FP32 probs module -> INT8 GraphModule calibrated on `calib` (N x C x H x W). `float_first_conv` leaves the
    input convolution in FP32 (INC's per-name local config), as the NNCF backends do."""
    import torch
    from neural_compressor.torch.export import export
    from neural_compressor.torch.quantization import StaticQuantConfig, convert, prepare

    # INC sets its logger to INFO on import and then logs every rewrite pass; keep warnings only.
    logging.getLogger("neural_compressor").setLevel(logging.WARNING)
    x = torch.from_numpy(np.ascontiguousarray(calib))
    exported = export(module.eval(), (x[:batch],), dynamic_shapes=_batch_dim())
    config = StaticQuantConfig()
    if float_first_conv and (name := first_conv_name(module)):
        config.set_local(name, StaticQuantConfig(w_dtype="fp32", act_dtype="fp32"))
    prepared = prepare(exported, config)
    with torch.no_grad():
        for i in range(0, len(x), batch):
            prepared(x[i:i + batch])
    return convert(prepared)


def save(q_model, example: np.ndarray, path: Path) -> Path:
    """torch.export archive (.pt2) of the quantized graph; `load` restores it without INC."""
    import torch

    ep = torch.export.export(q_model, (torch.from_numpy(example),), dynamic_shapes=_batch_dim())
    # Provenance metadata holds Python object ids (`from_node` graph_id, `nn_module_stack` module ids) and source
    # paths (`stack_trace`): the archive would differ on every run. It is for debugging only (loading and running
    # do not read it); dropping it makes same input, same bytes.
    for node in ep.graph.nodes:
        for key in ("from_node", "stack_trace", "nn_module_stack"):
            node.meta.pop(key, None)
    torch.export.save(ep, str(path))
    return path


def load(path: Path, compile_model: bool = False):
    import torch
    import torchao.quantization.pt2e  # noqa: F401  registers the quantized_decomposed ops the archive refers to

    module = torch.export.load(str(path)).module()
    return torch.compile(module, dynamic=False) if compile_model else module
