"""PP-OCRv3 English recognizer without the SVTR mixer/LSTM, as in Arm's Cortex-M flow (`algorithm: SVTR`).

Backbone MobileNetV1Enhance (scale 0.5, last_conv_stride [1, 2], last_pool_type avg) -> reshape neck
(N, C, 1, W) -> (N, W, C) -> CTCHead (fc C->mid, fc mid->K). Written here because no PaddleOCR wheel ships the
training code (ppocr/modeling); layer names and initialisers follow PaddleOCR so the weights are familiar.
Conv-only by design: the graph must import into TVM Relax (conv, BN, hardswish, hardsigmoid, pool, matmul).
"""

from __future__ import annotations

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingNormal, Uniform
from paddle.regularizer import L2Decay

from wordrec.errors import ConfigError

ARCH = "ppocrv3_mv1e_ctc"
ACTS = {"hardswish": nn.Hardswish, "relu": nn.ReLU}


class ConvBN(nn.Layer):
    def __init__(self, cin, cout, k, stride, padding, groups=1, act="hardswish"):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride=stride, padding=padding, groups=groups,
                              weight_attr=ParamAttr(initializer=KaimingNormal()), bias_attr=False)
        # PP-OCR exempts BN scale/shift from weight decay.
        self.bn = nn.BatchNorm2D(cout, weight_attr=ParamAttr(regularizer=L2Decay(0.0)),
                                 bias_attr=ParamAttr(regularizer=L2Decay(0.0)))
        self.act = ACTS[act]()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SE(nn.Layer):
    def __init__(self, c, reduction=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(c, c // reduction, 1)
        self.conv2 = nn.Conv2D(c // reduction, c, 1)

    def forward(self, x):
        s = F.hardsigmoid(self.conv2(F.relu(self.conv1(self.pool(x)))))
        return x * s


class DepthwiseSeparable(nn.Layer):
    def __init__(self, cin, f1, f2, groups, stride, scale, dw_size=3, padding=1, use_se=False, act="hardswish"):
        super().__init__()
        self.dw = ConvBN(cin, int(f1 * scale), dw_size, stride, padding, groups=int(groups * scale), act=act)
        self.se = SE(int(f1 * scale)) if use_se else None
        self.pw = ConvBN(int(f1 * scale), int(f2 * scale), 1, 1, 0, act=act)

    def forward(self, x):
        x = self.dw(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw(x)


class MobileNetV1Enhance(nn.Layer):
    def __init__(self, in_channels=3, scale=0.5, last_conv_stride=(1, 2), last_pool_type="avg", act="hardswish"):
        super().__init__()
        s = scale
        ds = lambda *a, **k: DepthwiseSeparable(*a, scale=s, act=act, **k)  # noqa: E731
        self.conv1 = ConvBN(in_channels, int(32 * s), 3, 2, 1, act=act)
        blocks = [
            ds(int(32 * s), 32, 64, 32, 1),
            ds(int(64 * s), 64, 128, 64, 1),
            ds(int(128 * s), 128, 128, 128, 1),
            ds(int(128 * s), 128, 256, 128, (2, 1)),
            ds(int(256 * s), 256, 256, 256, 1),
            ds(int(256 * s), 256, 512, 256, (2, 1)),
        ]
        blocks += [ds(int(512 * s), 512, 512, 512, 1, dw_size=5, padding=2) for _ in range(5)]
        blocks += [
            ds(int(512 * s), 512, 1024, 512, (2, 1), dw_size=5, padding=2, use_se=True),
            ds(int(1024 * s), 1024, 1024, 1024, tuple(last_conv_stride), dw_size=5, padding=2, use_se=True),
        ]
        self.blocks = nn.Sequential(*blocks)
        if last_pool_type == "avg":
            self.pool = nn.AvgPool2D(2, 2)
        elif last_pool_type == "max":
            self.pool = nn.MaxPool2D(2, 2)
        else:
            raise ConfigError(f"svtr.arch.last_pool_type: expected avg|max, got {last_pool_type!r}")
        self.out_channels = int(1024 * s)

    def forward(self, x):
        return self.pool(self.blocks(self.conv1(x)))


class CTCHead(nn.Layer):
    def __init__(self, cin, num_classes, mid_channels=96, fc_decay=2e-5):
        super().__init__()

        def attr(fan_in):
            std = 1.0 / math.sqrt(fan_in)
            return ParamAttr(regularizer=L2Decay(fc_decay), initializer=Uniform(-std, std))

        self.fc1 = nn.Linear(cin, mid_channels, weight_attr=attr(cin), bias_attr=attr(cin))
        self.fc2 = nn.Linear(mid_channels, num_classes, weight_attr=attr(mid_channels), bias_attr=attr(mid_channels))

    def forward(self, x):
        return self.fc2(self.fc1(x))


class RecModel(nn.Layer):
    """x: float32 [N, 3, H, W] -> logits [N, T, K] in training, softmax probabilities in eval (what is exported)."""

    def __init__(self, num_classes: int, in_channels=3, height=32, scale=0.5, last_conv_stride=(1, 2),
                 last_pool_type="avg", mid_channels=96, fc_decay=2e-5, act="hardswish"):
        super().__init__()
        if height != 32:
            # Three (2,1) strides, conv1 and the final pool reduce 32 px to exactly one row for the reshape neck.
            raise ConfigError(f"svtr input.height: the PP-OCRv3 backbone needs 32, got {height}")
        self.backbone = MobileNetV1Enhance(in_channels, scale, last_conv_stride, last_pool_type, act)
        self.head = CTCHead(self.backbone.out_channels, num_classes, mid_channels, fc_decay)
        self.num_classes = num_classes

    def forward(self, x):
        f = self.backbone(x)  # N, C, 1, W/8
        f = paddle.squeeze(f, axis=2).transpose([0, 2, 1])  # the `reshape` SequenceEncoder
        y = self.head(f)
        return y if self.training else F.softmax(y, axis=2)


def build(mcfg, num_classes: int) -> RecModel:
    a = mcfg.arch
    return RecModel(num_classes, in_channels=mcfg.input.channels, height=mcfg.input.height, scale=a.scale,
                    last_conv_stride=list(a.last_conv_stride), last_pool_type=a.last_pool_type,
                    mid_channels=a.mid_channels, fc_decay=a.fc_decay, act=a.act)


def time_steps(width: int) -> int:
    """CTC sequence length for an input width (conv1 /2, last conv /2, pool /2)."""
    return width // 8
