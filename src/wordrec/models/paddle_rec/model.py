"""PP-OCRv3 recognizer in Paddle: MobileNetV1Enhance backbone -> neck -> CTCHead.

Backbone MobileNetV1Enhance (scale 0.5, last_conv_stride [1, 2], last_pool_type avg), then one of two necks:
- `reshape` (Arm's Cortex-M flow, `algorithm: SVTR`): (N, C, 1, W) -> (N, W, C). Conv-only by design: the graph
  must import into TVM Relax (conv, BN, hardswish, hardsigmoid, pool, matmul).
- `svtr`: PaddleOCR's EncoderWithSVTR as PP-OCRv3 rec ships it (conv 3x3 -> 1x1 -> two global-attention blocks of
  dim 120 -> LayerNorm -> 1x1 -> concat with the backbone output -> 3x3 -> 1x1, swish activations), so the
  pretrained PP-OCRv3 weights load into it (wordrec.models.paddle_rec.ppocr_import).
CTCHead: fc C->mid->K, or a single fc C->K when mid_channels is null (PP-OCRv3's head).
Written here because no PaddleOCR wheel ships the training code (ppocr/modeling); the SVTR neck's shapes, eps
values and activations were read off the PP-OCRv3 rec ONNX graph. Layer order = the ONNX graph's weight order.
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

ARCHS = {"reshape": "ppocrv3_mv1e_ctc", "svtr": "ppocrv3_mv1e_svtr_ctc"}  # meta.json arch per neck
NECKS = tuple(ARCHS)
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


def backbone_blocks(scale: float, last_conv_stride) -> list[dict]:
    """MobileNetV1Enhance's 13 depthwise-separable blocks, in order, as DepthwiseSeparable keyword arguments (all
    but scale/act): the layout both this model and its torch twin (wordrec.models.paddle_rec.twin) build."""
    rows = [(32, 32, 64, 32, 1), (64, 64, 128, 64, 1), (128, 128, 128, 128, 1), (128, 128, 256, 128, (2, 1)),
            (256, 256, 256, 256, 1), (256, 256, 512, 256, (2, 1))]
    rows = [(*r, 3, 1, False) for r in rows] + [(512, 512, 512, 512, 1, 5, 2, False)] * 5 + [
        (512, 512, 1024, 512, (2, 1), 5, 2, True),
        (1024, 1024, 1024, 1024, tuple(last_conv_stride), 5, 2, True)]
    keys = ("f1", "f2", "groups", "stride", "dw_size", "padding", "use_se")
    return [{"cin": int(c * scale), **dict(zip(keys, rest))} for c, *rest in rows]


class MobileNetV1Enhance(nn.Layer):
    def __init__(self, in_channels=3, scale=0.5, last_conv_stride=(1, 2), last_pool_type="avg", act="hardswish"):
        super().__init__()
        self.conv1 = ConvBN(in_channels, int(32 * scale), 3, 2, 1, act=act)
        blocks = [DepthwiseSeparable(scale=scale, act=act, **b) for b in backbone_blocks(scale, last_conv_stride)]
        self.blocks = nn.Sequential(*blocks)
        if last_pool_type == "avg":
            self.pool = nn.AvgPool2D(2, 2)
        elif last_pool_type == "max":
            self.pool = nn.MaxPool2D(2, 2)
        else:
            raise ConfigError(f"svtr.arch.last_pool_type: expected avg|max, got {last_pool_type!r}")
        self.out_channels = int(1024 * scale)

    def forward(self, x):
        return self.pool(self.blocks(self.conv1(x)))


class CTCHead(nn.Layer):
    def __init__(self, cin, num_classes, mid_channels=96, fc_decay=2e-5):
        super().__init__()

        def attr(fan_in):
            std = 1.0 / math.sqrt(fan_in)
            return ParamAttr(regularizer=L2Decay(fc_decay), initializer=Uniform(-std, std))

        if mid_channels:
            self.fc1 = nn.Linear(cin, mid_channels, weight_attr=attr(cin), bias_attr=attr(cin))
            self.fc2 = nn.Linear(mid_channels, num_classes, weight_attr=attr(mid_channels),
                                 bias_attr=attr(mid_channels))
        else:  # PP-OCRv3's head: one fc straight from the neck's channels to the classes
            self.fc1 = None
            self.fc2 = nn.Linear(cin, num_classes, weight_attr=attr(cin), bias_attr=attr(cin))

    def forward(self, x):
        return self.fc2(self.fc1(x) if self.fc1 is not None else x)


class ConvBNSwish(nn.Layer):
    """The SVTR neck's ConvBNLayer: conv (no bias) -> BN (eps 1e-5) -> swish (x * sigmoid(x), beta 1 in the ONNX)."""

    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, padding=k // 2, weight_attr=ParamAttr(initializer=KaimingNormal()),
                              bias_attr=False)
        self.norm = nn.BatchNorm2D(cout, weight_attr=ParamAttr(regularizer=L2Decay(0.0)),
                                   bias_attr=ParamAttr(regularizer=L2Decay(0.0)))
        self.act = nn.Swish()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class Attention(nn.Layer):
    """Global multi-head self-attention: qkv fc (with bias) -> (3, N, heads, T, d) -> softmax(q k^T * d^-0.5) v."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5  # 15 ** -0.5 = 0.2582 in the ONNX
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        c = x.shape[-1]
        qkv = self.qkv(x).reshape([0, -1, 3, self.num_heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = F.softmax(q.matmul(k.transpose([0, 1, 3, 2])), axis=-1)
        return self.proj(attn.matmul(v).transpose([0, 2, 1, 3]).reshape([0, -1, c]))


class Mlp(nn.Layer):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.Swish()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Layer):
    """Pre-norm transformer block (LayerNorm eps 1e-5): x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-5)
        self.mixer = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SVTRNeck(nn.Layer):
    """PaddleOCR's EncoderWithSVTR at PP-OCRv3's settings (dims 64, depth 2, hidden 120, 8 heads, mlp ratio 2).

    (N, C, 1, W) -> conv3x3 C->C/8 -> conv1x1 ->hidden -> blocks over the W tokens -> LayerNorm (eps 1e-6) ->
    conv1x1 hidden->C -> concat [input, that] -> conv3x3 2C->C/8 -> conv1x1 ->dims -> (N, W, dims).
    """

    def __init__(self, cin, dims=64, depth=2, hidden_dims=120, num_heads=8, mlp_ratio=2.0):
        super().__init__()
        self.conv1 = ConvBNSwish(cin, cin // 8, 3)
        self.conv2 = ConvBNSwish(cin // 8, hidden_dims, 1)
        self.svtr_block = nn.LayerList([Block(hidden_dims, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(hidden_dims, epsilon=1e-6)
        self.conv3 = ConvBNSwish(hidden_dims, cin, 1)
        self.conv4 = ConvBNSwish(2 * cin, cin // 8, 3)
        self.conv1x1 = ConvBNSwish(cin // 8, dims, 1)
        self.out_channels = dims

    def forward(self, x):
        h = x
        z = self.conv2(self.conv1(x))
        c = z.shape[1]
        # the feature height is 1 (RecModel checks it), so the H*W tokens are the W time steps
        z = z.flatten(2).transpose([0, 2, 1])
        for blk in self.svtr_block:
            z = blk(z)
        z = self.norm(z).transpose([0, 2, 1]).reshape([0, c, 1, -1])
        z = self.conv1x1(self.conv4(paddle.concat([h, self.conv3(z)], axis=1)))
        return z.squeeze(2).transpose([0, 2, 1])


def feature_height(height: int) -> int:
    """Rows left after the backbone: conv1 and the three (2, 1)-strided blocks halve (rounding up, padding 1 or 2),
    the final 2x2 pool halves (rounding down). 32 and 48 px both give 1."""
    for _ in range(4):
        height = (height + 1) // 2
    return height // 2


class RecModel(nn.Layer):
    """x: float32 [N, 3, H, W] -> logits [N, T, K] in training, softmax probabilities in eval (what is exported)."""

    def __init__(self, num_classes: int, in_channels=3, height=32, scale=0.5, last_conv_stride=(1, 2),
                 last_pool_type="avg", mid_channels=96, fc_decay=2e-5, act="hardswish", neck="reshape"):
        super().__init__()
        # what builds the same network elsewhere (the torch twin, wordrec.models.paddle_rec.twin)
        self.config = dict(num_classes=num_classes, in_channels=in_channels, scale=scale,
                           last_conv_stride=tuple(last_conv_stride), last_pool_type=last_pool_type,
                           mid_channels=mid_channels, act=act, neck=neck)
        if feature_height(height) != 1:
            # Both necks read one row of features per time step (PaddleOCR trains v3 at 48, Arm's flow at 32).
            raise ConfigError(f"svtr input.height: the PP-OCRv3 backbone needs a height that it reduces to one row "
                              f"(32..63, e.g. 32 or 48), got {height}")
        if neck not in NECKS:
            raise ConfigError(f"svtr arch.neck: expected one of {list(NECKS)}, got {neck!r}")
        self.backbone = MobileNetV1Enhance(in_channels, scale, last_conv_stride, last_pool_type, act)
        self.neck = SVTRNeck(self.backbone.out_channels) if neck == "svtr" else None
        cin = self.neck.out_channels if self.neck is not None else self.backbone.out_channels
        self.head = CTCHead(cin, num_classes, mid_channels, fc_decay)
        self.num_classes = num_classes
        self.frozen_backbone = False

    def freeze_backbone(self, train_last: int = 0, lr_scale: float = 1.0) -> None:
        """Fine-tuning from pretrained weights: the backbone's weights get no gradient and its BatchNorms keep
        their running statistics (eval mode even in `train()`), so only the neck and head move -- except the
        backbone's last `train_last` blocks, whose weights train at `lr_scale` x the learning rate (their
        BatchNorms keep the pretrained statistics too: batches of 32 would estimate them worse)."""
        blocks = list(self.backbone.blocks)
        if not 0 <= train_last <= len(blocks):
            raise ConfigError(f"svtr train_last_blocks: expected 0..{len(blocks)}, got {train_last}")
        # BatchNorm's running mean/variance are parameters too, created with stop_gradient: they stay fixed
        learnable = {id(p) for p in self.backbone.parameters() if not p.stop_gradient}
        for p in self.backbone.parameters():
            p.stop_gradient = True
        for blk in blocks[len(blocks) - train_last:]:
            for p in blk.parameters():
                if id(p) in learnable:
                    p.stop_gradient = False
                    p.optimize_attr["learning_rate"] = lr_scale  # Paddle's per-parameter multiplier of the lr
        self.frozen_backbone = True
        if self.training:
            self.backbone.eval()

    def train(self):
        super().train()
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    def forward(self, x):
        f = self.backbone(x)  # N, C, 1, W/8
        if self.neck is not None:
            f = self.neck(f)
        else:
            f = paddle.squeeze(f, axis=2).transpose([0, 2, 1])  # the `reshape` SequenceEncoder
        y = self.head(f)
        return y if self.training else F.softmax(y, axis=2)


def build(mcfg, num_classes: int) -> RecModel:
    a = mcfg.arch
    return RecModel(num_classes, in_channels=mcfg.input.channels, height=mcfg.input.height, scale=a.scale,
                    last_conv_stride=list(a.last_conv_stride), last_pool_type=a.last_pool_type,
                    mid_channels=a.mid_channels, fc_decay=a.fc_decay, act=a.act, neck=a.get("neck", "reshape"))


def arch_name(mcfg) -> str:
    return ARCHS[mcfg.arch.get("neck", "reshape")]


def time_steps(width: int) -> int:
    """CTC sequence length for an input width (conv1 /2, last conv /2, pool /2)."""
    return width // 8
