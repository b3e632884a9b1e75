"""CRNN recognizers as plain `nn.Module`s.

Both take x: float32[N, C, H, W] (H a multiple of 16) and return LOGITS [N, T, K]; `InferenceWrapper` adds the
softmax that every exported/served graph ends with (docs/DEVELOPING.md). Only static-shape, export-friendly ops
are used: conv, batch norm, relu, max-pool, reshape/permute, LSTM (crnn only) and linear.

- `crnn`: Shi et al. 2015 (arXiv:1507.05717): 7 convs 64->512, BiLSTM x2 (256), linear. T = W/4 + 1.
- `crnn_lite`: the same conv trunk, no recurrence: the sequence head is a stack of (1 x k) convolutions along
  the width, so TVM Relax (conv/relu/pool/reshape/transpose/matmul) and the MCU flow can take it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from wordrec.errors import ConfigError, DataError, one_line

CLASSIC_CHANNELS = [64, 128, 256, 256, 512, 512, 512]


def _conv(cin: int, cout: int, k=3, p=1) -> list[nn.Module]:
    # BatchNorm on every conv (the paper has it on 3): same graph after BN folding, trains faster.
    return [nn.Conv2d(cin, cout, k, 1, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ConvTrunk(nn.Module):
    """The CRNN conv stack: H/16 then a (H/16 x 2) valid conv collapses the height to 1; W -> W/4 + 1."""

    def __init__(self, in_channels: int, channels: list[int], height: int):
        super().__init__()
        if len(channels) != 7:
            raise ConfigError(f"arch.channels: expected 7 conv widths, got {list(channels)}")
        if height % 16:
            raise ConfigError(f"input.height: must be a multiple of 16 for the CRNN trunk, got {height}")
        c = list(channels)
        self.body = nn.Sequential(
            *_conv(in_channels, c[0]), nn.MaxPool2d(2, 2),
            *_conv(c[0], c[1]), nn.MaxPool2d(2, 2),
            *_conv(c[1], c[2]), *_conv(c[2], c[3]), nn.MaxPool2d((2, 2), (2, 1), (0, 1)),
            *_conv(c[3], c[4]), *_conv(c[4], c[5]), nn.MaxPool2d((2, 2), (2, 1), (0, 1)),
            *_conv(c[5], c[6], k=(height // 16, 2), p=0),
        )
        self.out_channels = c[6]

    def forward(self, x):
        return self.body(x)  # N x C x 1 x T


class CRNN(nn.Module):
    def __init__(self, in_channels, num_classes, height, channels, hidden=256, lstm_layers=2):
        super().__init__()
        self.trunk = ConvTrunk(in_channels, channels, height)
        self.rnn = nn.LSTM(self.trunk.out_channels, hidden, num_layers=lstm_layers, bidirectional=True,
                           batch_first=True)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, x):
        f = self.trunk(x).squeeze(2).permute(0, 2, 1)  # N x T x C
        y, _ = self.rnn(f)
        return self.fc(y)


class CRNNLite(nn.Module):
    """Conv-only sequence head: each (1 x k) conv widens the receptive field along the text line."""

    def __init__(self, in_channels, num_classes, height, channels, head_channels=256, head_layers=2, head_kernel=3):
        super().__init__()
        self.trunk = ConvTrunk(in_channels, channels, height)
        layers, cin = [], self.trunk.out_channels
        for _ in range(head_layers):
            layers += _conv(cin, head_channels, k=(1, head_kernel), p=(0, head_kernel // 2))
            cin = head_channels
        self.head = nn.Sequential(*layers)
        self.fc = nn.Conv2d(cin, num_classes, 1)  # a 1x1 conv = per-step linear, stays 4-D for the MCU flow

    def forward(self, x):
        y = self.fc(self.head(self.trunk(x)))  # N x K x 1 x T
        return y.flatten(2).permute(0, 2, 1)  # N x T x K


class InferenceWrapper(nn.Module):
    """What gets exported and served: softmax probabilities N x T x K (class 0 = CTC blank)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.softmax(self.model(x), dim=2)


# arch.type -> factory(in_channels, num_classes, height, **other arch keys); tests register tiny stand-ins.
ARCHS = {
    "crnn": lambda cin, k, h, channels=CLASSIC_CHANNELS, **a: CRNN(cin, k, h, list(channels), **a),
    "crnn_lite": lambda cin, k, h, channels=CLASSIC_CHANNELS, **a: CRNNLite(cin, k, h, list(channels), **a),
}


def build_model(arch, num_classes: int, in_channels: int, height: int = 32) -> nn.Module:
    """`arch` = params train.models.<name>.arch: {type: crnn|crnn_lite, channels: [7 ints], ...}."""
    a = dict(arch)
    kind = a.pop("type", None)
    if kind not in ARCHS:
        raise ConfigError(f"arch.type: expected one of {sorted(ARCHS)}, got {kind!r}")
    try:
        return ARCHS[kind](in_channels, num_classes, height, **a)
    except TypeError as e:
        raise ConfigError(f"arch {kind}: bad keys {sorted(a)}: {e}") from None


def load_checkpoint(model: nn.Module, path: Path, charset) -> dict:
    """Load a train-stage checkpoint ({"state_dict", "meta"}) into `model`; DataError for a missing, truncated or
    foreign file, or one trained for another charset/arch."""
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        # a damaged file can make torch warn (e.g. "pickle protocol 76") before it fails: the DataError below is the
        # one line the user gets, and a good checkpoint never warns here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, pickle errors: all mean an unusable file
        raise DataError(f"{path}: corrupt model file (torch cannot read it: {one_line(e)[:200]})") from None
    if not (isinstance(ck, dict) and isinstance(ck.get("state_dict"), dict) and isinstance(ck.get("meta"), dict)):
        raise DataError(f"{path}: not a wordrec checkpoint (expected {{'state_dict', 'meta'}} as the train stage "
                        "writes)")
    if ck["meta"].get("charset") != charset.chars:
        raise DataError(f"{path}: checkpoint charset {ck['meta'].get('charset')!r} differs from {charset.chars!r}")
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        raise DataError(f"{path}: checkpoint does not fit the configured model: {str(e)[:300]}") from None
    return ck["meta"]


def load_inference_module(ckpt: Path, meta) -> nn.Module:
    """The served/exported graph of a trained dir: build from meta (a models.meta.ModelMeta), load, softmax, eval."""
    model = build_model(meta.arch, meta.num_classes, meta.input.channels, meta.input.height)
    load_checkpoint(model, Path(ckpt), meta.charset)
    return InferenceWrapper(model).eval()


def seq_len(model: nn.Module, channels: int, height: int, width: int) -> int:
    """Number of CTC time steps T the model emits for a given input size."""
    with torch.no_grad():
        was = model.training
        model.eval()
        t = model(torch.zeros(1, channels, height, width)).shape[1]
        model.train(was)
    return int(t)
