"""A torch twin of the Paddle recognizer (wordrec.models.paddle_rec.model): same layers, same parameter names, so
weights go across in both directions exactly (`to_torch` / `to_paddle`).

Why: Paddle's eager CPU training runs this model ~10x slower than torch (issue #16: 15-29 images/s), so on CPU
the `svtr` family trains here (`engine: torch`) and the result goes back into the Paddle model, which stays the
deliverable (PaddleOCR's inference format, export, quantize). Written by hand because no library converts Paddle
layers to torch; the mapping is mechanical: Linear weights are stored [in, out] by Paddle and [out, in] by torch,
BatchNorm's running statistics are `_mean`/`_variance` in Paddle and `running_mean`/`running_var` in torch, and
torch keeps a `num_batches_tracked` counter that Paddle has no use for.

Numerics that must agree (tests/test_twin.py proves probabilities within 1e-5 on real crops): Paddle's
hardsigmoid (slope 0.1666667, offset 0.5) is torch's x/6 + 0.5 up to 3e-8 x; swish is SiLU; BatchNorm eps 1e-5 and
momentum 0.9 (Paddle: running = 0.9 running + 0.1 batch) = torch's momentum 0.1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from wordrec.errors import DataError
from wordrec.models.paddle_rec.model import backbone_blocks

ACTS = {"hardswish": nn.Hardswish, "relu": nn.ReLU}
_STATS = {"running_mean": "_mean", "running_var": "_variance"}


class ConvBN(nn.Module):
    def __init__(self, cin, cout, k, stride, padding, groups=1, act="hardswish"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = ACTS[act]()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SE(nn.Module):
    def __init__(self, c, reduction=4):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c // reduction, 1)
        self.conv2 = nn.Conv2d(c // reduction, c, 1)

    def forward(self, x):
        s = F.hardsigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(x, 1)))))
        return x * s


class DepthwiseSeparable(nn.Module):
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


class MobileNetV1Enhance(nn.Module):
    def __init__(self, in_channels=3, scale=0.5, last_conv_stride=(1, 2), last_pool_type="avg", act="hardswish"):
        super().__init__()
        self.conv1 = ConvBN(in_channels, int(32 * scale), 3, 2, 1, act=act)
        blocks = [DepthwiseSeparable(scale=scale, act=act, **b) for b in backbone_blocks(scale, last_conv_stride)]
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AvgPool2d(2, 2) if last_pool_type == "avg" else nn.MaxPool2d(2, 2)

    def forward(self, x):
        return self.pool(self.blocks(self.conv1(x)))


class CTCHead(nn.Module):
    def __init__(self, cin, num_classes, mid_channels=96):
        super().__init__()
        self.fc1 = nn.Linear(cin, mid_channels) if mid_channels else None
        self.fc2 = nn.Linear(mid_channels or cin, num_classes)

    def forward(self, x):
        return self.fc2(self.fc1(x) if self.fc1 is not None else x)


class ConvBNSwish(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.mixer = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SVTRNeck(nn.Module):
    def __init__(self, cin, dims=64, depth=2, hidden_dims=120, num_heads=8, mlp_ratio=2.0):
        super().__init__()
        self.conv1 = ConvBNSwish(cin, cin // 8, 3)
        self.conv2 = ConvBNSwish(cin // 8, hidden_dims, 1)
        self.svtr_block = nn.ModuleList([Block(hidden_dims, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(hidden_dims, eps=1e-6)
        self.conv3 = ConvBNSwish(hidden_dims, cin, 1)
        self.conv4 = ConvBNSwish(2 * cin, cin // 8, 3)
        self.conv1x1 = ConvBNSwish(cin // 8, dims, 1)
        self.out_channels = dims

    def forward(self, x):
        z = self.conv2(self.conv1(x))
        n, c = z.shape[:2]
        z = z.flatten(2).transpose(1, 2)
        for blk in self.svtr_block:
            z = blk(z)
        z = self.norm(z).transpose(1, 2).reshape(n, c, 1, -1)
        z = self.conv1x1(self.conv4(torch.cat([x, self.conv3(z)], dim=1)))
        return z.squeeze(2).transpose(1, 2)


class RecModel(nn.Module):
    """x float32 [N, 3, H, W] -> logits [N, T, K] (softmax applied by the caller, as the Paddle model does in eval)."""

    def __init__(self, num_classes, in_channels=3, scale=0.5, last_conv_stride=(1, 2), last_pool_type="avg",
                 mid_channels=96, act="hardswish", neck="reshape"):
        """Arguments as the Paddle RecModel's (its `.config`)."""
        super().__init__()
        self.backbone = MobileNetV1Enhance(in_channels, scale, last_conv_stride, last_pool_type, act)
        cin = int(1024 * scale)
        self.neck = SVTRNeck(cin) if neck == "svtr" else None
        self.head = CTCHead(self.neck.out_channels if self.neck is not None else cin, num_classes, mid_channels)

    def forward(self, x):
        f = self.backbone(x)
        f = self.neck(f) if self.neck is not None else f.squeeze(2).transpose(1, 2)
        return self.head(f)


def from_paddle(paddle_model) -> RecModel:
    """The twin of a Paddle RecModel, holding its weights and BatchNorm statistics."""
    tw = RecModel(**paddle_model.config)
    to_torch(tw, paddle_model.state_dict())
    return tw


def _linear_weights(module: nn.Module) -> set[str]:
    return {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, nn.Linear)}


def _paddle_key(key: str) -> str:
    head, _, leaf = key.rpartition(".")
    return f"{head}.{_STATS.get(leaf, leaf)}"


def to_torch(twin: RecModel, paddle_state: dict) -> None:
    """Load a Paddle state dict (tensors or arrays) into the twin; every tensor present and shape-checked."""
    lin = _linear_weights(twin)
    new = {}
    for key, own in twin.state_dict().items():
        if key.endswith("num_batches_tracked"):
            new[key] = own
            continue
        pk = _paddle_key(key)
        if pk not in paddle_state:
            raise DataError(f"paddle state: tensor {pk!r} is missing (the torch twin needs it for {key!r})")
        v = np.asarray(paddle_state[pk].numpy() if hasattr(paddle_state[pk], "numpy") else paddle_state[pk])
        want = tuple(own.shape)[::-1] if key in lin else tuple(own.shape)  # in Paddle's layout
        if tuple(v.shape) != want:
            raise DataError(f"paddle state: tensor {pk!r} has shape {list(v.shape)}, the model expects "
                            f"{list(want)}")
        v = v.T if key in lin else v
        new[key] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
    twin.load_state_dict(new)


def to_paddle(twin: RecModel, paddle_model) -> None:
    """Write the twin's weights and BatchNorm statistics into a Paddle RecModel of the same architecture."""
    lin = _linear_weights(twin)
    ts = twin.state_dict()
    state = {}
    for pk, own in paddle_model.state_dict().items():
        key = next((k for k in (pk, pk.replace("._mean", ".running_mean").replace("._variance", ".running_var"))
                    if k in ts), None)
        if key is None:
            raise DataError(f"torch twin: no tensor for the Paddle model's {pk!r}")
        v = ts[key].detach().cpu().numpy()
        v = v.T if key in lin else v
        if list(v.shape) != list(own.shape):
            raise DataError(f"torch twin: tensor {key!r} has shape {list(v.shape)}, the Paddle model expects "
                            f"{list(own.shape)} for {pk!r}")
        state[pk] = np.ascontiguousarray(v)
    missing, unexpected = paddle_model.set_state_dict(state)
    if missing or unexpected:
        raise DataError(f"torch twin -> paddle: missing {missing[:3]}, unexpected {unexpected[:3]}")


def param_groups(twin: RecModel, paddle_model, default_decay: float) -> list[dict]:
    """The Paddle model's training attributes carried to the twin, parameter by parameter: trainable or not
    (stop_gradient, e.g. a frozen backbone), the lr multiplier (optimize_attr) and the L2 coefficient (its own
    regularizer, else the optimizer's). Groups of equal (lr scale, decay) for torch.optim.Adam."""
    attrs = {}
    for name, p in paddle_model.named_parameters():
        reg = getattr(p, "regularizer", None)
        decay = float(reg._coeff) if reg is not None else float(default_decay)
        attrs[name] = (not p.stop_gradient, float(p.optimize_attr.get("learning_rate", 1.0)), decay)
    groups: dict[tuple[float, float], list] = {}
    for name, p in twin.named_parameters():
        if name not in attrs:
            raise DataError(f"torch twin: parameter {name!r} has no Paddle counterpart")
        train, scale, decay = attrs[name]
        p.requires_grad_(train)
        if train:
            groups.setdefault((scale, decay), []).append(p)
    return [{"params": ps, "lr_scale": s, "weight_decay": d} for (s, d), ps in sorted(groups.items())]
