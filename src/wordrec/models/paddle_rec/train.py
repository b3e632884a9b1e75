"""Train the PP-OCRv3-style recognizer in Paddle and write a trained model dir (see docs/DEVELOPING.md).

`fit` is called by the `train` stage for models with `framework: paddle`. Schedule as PP-OCR: Adam, linear warmup
into cosine decay, L2 weight decay (per-layer overrides in the model), global-norm gradient clipping. `engine`
says what takes the steps: Paddle itself, or the model's torch twin (wordrec.models.paddle_rec.twin: the same
steps 3.5-6x faster on CPU, the kept weights written back into the Paddle model), optionally distilling a
PP-OCRv3-layout teacher.
Resumable state lives in `ckpt_dir` (DVC `persist: true`, because DVC deletes stage outputs before a run); it is
used only if its config hash matches, so a changed config or dataset starts from scratch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from wordrec.data.charset import Charset
from wordrec.errors import ConfigError, DataError, one_line
from wordrec.infer.decode import texts
from wordrec.io import atomic_dir, write_json
from wordrec.models.meta import InputSpec, ModelMeta
from wordrec.models.training import write_curve_files
from wordrec.pipeline.metrics import score

LINE_SPLITS = ("lines_train", "lines_val")  # synth's multi-word line splits a `lines_fraction` model trains/selects on


def lines_fraction(mcfg) -> float:
    """train.models.<name>.lines_fraction (absent in configs written before it: 0, words only)."""
    return float(mcfg.get("lines_fraction") or 0.0)



def wants_gpu(want: str, has_gpu, who: str) -> bool:
    """train.device -> train on a GPU? cpu: no; gpu: yes (an error naming the key when `has_gpu()` is false);
    auto: when there is one. `who` names the framework in that error."""
    if want == "cpu":
        return False
    if want not in ("gpu", "auto"):
        raise ConfigError(f"params train.device: expected cpu | gpu | auto, got {want!r}")
    gpu = has_gpu()
    if want == "gpu" and not gpu:
        raise ConfigError(f"params train.device: gpu, but {who} sees no CUDA device (use cpu or auto)")
    return gpu


def pick_device(want: str) -> str:
    """train.device -> the Paddle device (wants_gpu)."""
    import paddle

    def has_gpu():
        return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0

    return "gpu" if wants_gpu(want, has_gpu, "this Paddle build") else "cpu"


def set_threads(n: int, device: str = "cpu") -> str:
    """CPU threads for Paddle and the device it trains on (pick_device); returns the device."""
    # Paddle sizes its OpenMP/MKL pool from FLAGS_paddle_num_threads (default 1) at import; set it explicitly.
    import paddle
    from threadpoolctl import threadpool_limits

    os.environ["OMP_NUM_THREADS"] = str(n)
    paddle.set_flags({"FLAGS_paddle_num_threads": n})
    threadpool_limits(n)
    device = pick_device(device)
    paddle.device.set_device(device)
    return device


def threads_for(mcfg, tcfg) -> int:
    """The model's own `threads` if set, else the train stage's (`auto`: the cores this process may use)."""
    from wordrec.threads import resolve

    return resolve(mcfg.threads if mcfg.get("threads") is not None else tcfg.threads)


def config_hash(mcfg, tcfg, data_dir: Path) -> str:
    """What must match for a checkpoint to be resumed: model config, seed, threads and the training data."""
    splits = ("train", "val") + (LINE_SPLITS if lines_fraction(mcfg) > 0 else ())
    data = {s: (data_dir / s / "data.mdb").stat().st_size for s in splits}
    over = {k: tcfg.get(k) for k in ("lr", "batch_size", "epochs", "init", "device")}
    blob = json.dumps({"m": OmegaConf.to_container(mcfg, resolve=True), "seed": tcfg.seed,
                       "threads": threads_for(mcfg, tcfg), "data": data, "over": over}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_input(inp) -> None:
    # PaddleOCR's RecResizeImg feeds 3-channel, ratio-keeping, right-padded crops; the export must match it.
    if int(inp.channels) != 3 or not inp.keep_ratio:
        raise ConfigError(f"svtr input: expected channels 3 and keep_ratio true (PaddleOCR's preprocessing), got "
                          f"channels {inp.channels}, keep_ratio {inp.keep_ratio}")


def check_charset(charset: Charset) -> None:
    # PaddleOCR's CTCLabelDecode always appends the space class last; a space elsewhere would shift its indices.
    if " " in charset.chars[:-1]:
        raise ConfigError("svtr charset: a space must be the last character (PaddleOCR appends it there)")


def evaluate(probs_fn, ds, n: int, batch_size: int) -> tuple[dict, float]:
    """(wordrec.pipeline.metrics.score, mean CTC loss) on the first `n` items of `ds`; `probs_fn`: a batch
    [N, C, H, W] float32 -> softmax probabilities [N, T, K] as numpy (an engine's `probs`)."""
    import paddle
    import paddle.nn.functional as F

    n = min(n, len(ds))
    preds, losses = [], []
    for s in range(0, n, batch_size):
        xb, yb, lb = zip(*(ds[k] for k in range(s, min(n, s + batch_size))))
        probs = probs_fn(np.stack(xb))
        # ctc_loss applies softmax to its input; softmax(log p) = p, so log-probabilities give the true loss.
        logp = paddle.log(paddle.clip(paddle.to_tensor(probs), min=1e-12)).transpose([1, 0, 2])
        t = paddle.full([len(xb)], probs.shape[1], "int64")
        losses.append(float(F.ctc_loss(logp, paddle.to_tensor(np.stack(yb)), t, paddle.to_tensor(np.stack(lb)),
                                       blank=0, reduction="none").sum()))
        preds += texts(probs, ds.charset)
    return score(preds, [label for _, label in ds.items[:n]]), sum(losses) / max(n, 1)


def batch_order(step: int, n_items: int, take: int, seed: int, stream: int | None = None) -> tuple[int, np.ndarray]:
    """(epoch, indices) of the `take` items that optimizer step `step` draws from a set of `n_items`: a fresh
    permutation per pass, seeded by (seed[, stream], epoch), so a resumed run draws what an uninterrupted one does.
    Words are stream None (the order every run before lines had), lines stream 1: their passes are independent."""
    per_pass = n_items // take
    epoch, b = divmod(step, per_pass)
    key = [seed, epoch] if stream is None else [seed, stream, epoch]
    return epoch, np.random.default_rng(key).permutation(n_items)[b * take:(b + 1) * take]


def lines_per_batch(batch_size: int, fraction: float) -> int:
    """Line images in every batch for `lines_fraction` (rounded; at least one when the fraction is > 0, and at
    least one word is kept: word crops must keep working)."""
    if fraction <= 0:
        return 0
    return min(batch_size - 1, max(1, round(batch_size * fraction)))


def lr_factor(step: int, total: int, warm: int) -> float:
    """PP-OCR's schedule as a multiple of the peak lr after `step` optimizer steps: linear warmup from 0 over
    `warm` steps, then cosine decay to 0 at `total` (paddle's LinearWarmup + CosineAnnealingDecay)."""
    if step < warm:
        return step / warm
    return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


class PaddleEngine:
    """Trains the Paddle model itself (any device Paddle has; ~10x slower than torch on CPU). Every engine has
    step/probs/best_state/save/load/finish; `_fit` drives them."""

    files = ("model.pdparams", "opt.pdopt", "best.pdparams")

    def __init__(self, model, mcfg, lr: float, total: int, warm: int):
        import paddle

        self.model, self.device = model, paddle.device.get_device()
        sched = paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=max(1, total - warm))
        if warm > 0:
            sched = paddle.optimizer.lr.LinearWarmup(sched, warm, 0.0, lr)
        self.sched = sched
        self.trainable = [p for p in model.parameters() if not p.stop_gradient]
        self.opt = paddle.optimizer.Adam(learning_rate=sched, parameters=self.trainable, beta1=0.9, beta2=0.999,
                                         weight_decay=paddle.regularizer.L2Decay(mcfg.l2_decay),
                                         grad_clip=paddle.nn.ClipGradByGlobalNorm(mcfg.grad_clip))
        model.train()

    def step(self, x, y, lengths) -> float:
        import paddle
        import paddle.nn.functional as F

        logits = self.model(paddle.to_tensor(x))
        t = paddle.full([len(x)], logits.shape[1], "int64")
        loss = F.ctc_loss(logits.transpose([1, 0, 2]), paddle.to_tensor(y), t, paddle.to_tensor(lengths),
                          blank=0, reduction="none").mean()
        loss.backward()
        self.opt.step()
        self.opt.clear_grad()
        self.sched.step()
        return float(loss)

    def lr(self) -> float:
        return self.opt.get_lr()

    def probs(self, x):
        import paddle

        self.model.eval()
        with paddle.no_grad():
            p = self.model(paddle.to_tensor(x)).numpy()
        self.model.train()
        return p

    def best_state(self):
        return self.model.state_dict()

    def save(self, d: Path, best) -> None:
        import paddle

        paddle.save(self.model.state_dict(), str(d / "model.pdparams"))
        paddle.save(self.opt.state_dict(), str(d / "opt.pdopt"))
        if best is not None:
            paddle.save(best, str(d / "best.pdparams"))

    def load(self, d: Path) -> None:
        import paddle

        self.model.set_state_dict(paddle.load(str(d / "model.pdparams")))
        self.opt.set_state_dict(paddle.load(str(d / "opt.pdopt")))

    def finish(self, d: Path) -> None:
        """The Paddle model holds the kept (best) weights, in eval mode."""
        import paddle

        self.model.set_state_dict(paddle.load(str(d / "best.pdparams")))
        self.model.eval()


class TorchEngine(PaddleEngine):
    """Trains the torch twin (wordrec.models.paddle_rec.twin) of the Paddle model and writes the kept weights back
    into it: the same network, initial weights, frozen parts, per-parameter lr multipliers and L2 coefficients,
    schedule (lr_factor), Adam, global-norm clipping (before the L2 term, as Paddle) and CTC loss, ~3.5x (one
    thread) to 6x (two) faster on CPU. The Paddle model stays the deliverable."""

    files = ("model.pt", "opt.pt", "best.pt")

    def __init__(self, model, mcfg, lr: float, total: int, warm: int, device: str = "cpu", teacher=None):
        import torch

        from wordrec.models.paddle_rec import twin

        self.paddle_model, self.device = model, device
        self.teacher = teacher.to(device) if teacher is not None else None
        d = mcfg.get("distill") or {}
        self.kd_weight, self.kd_t = float(d.get("weight", 1.0)), float(d.get("temperature", 1.0))
        self.model = twin.from_paddle(model).to(device)
        groups = twin.param_groups(self.model, model, float(mcfg.l2_decay))
        self.trainable = [p for g in groups for p in g["params"]]
        for g in groups:
            g["lr"] = lr * g["lr_scale"]
        self.opt = torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
        self.base_lr = lr
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(s, total, warm))
        self.grad_clip = float(mcfg.grad_clip)
        self.frozen_backbone = bool(model.frozen_backbone)
        self.train_mode()

    def train_mode(self) -> None:
        self.model.train()
        if self.frozen_backbone:  # as the Paddle model: its BatchNorms keep the pretrained statistics
            self.model.backbone.eval()

    def step(self, x, y, lengths) -> float:
        import torch
        import torch.nn.functional as F

        xt = torch.from_numpy(x).to(self.device)
        logits = self.model(xt)
        logp = logits.log_softmax(2).transpose(0, 1)
        t = torch.full((len(x),), logp.shape[0], dtype=torch.long)
        loss = F.ctc_loss(logp, torch.from_numpy(y).long(), t, torch.from_numpy(lengths), blank=0,
                          reduction="none", zero_infinity=False).mean()
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(xt)
            loss = loss + self.kd_weight * distill_loss(logits, teacher_logits, self.kd_t)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, self.grad_clip)
        self.opt.step()
        self.sched.step()
        return float(loss.detach())

    def lr(self) -> float:
        """The peak lr's current value (as Paddle's get_lr; groups with an lr multiplier run at a multiple)."""
        return self.base_lr * self.sched.lr_lambdas[0](self.sched.last_epoch)

    def probs(self, x):
        import torch

        self.model.eval()
        with torch.no_grad():
            p = torch.softmax(self.model(torch.from_numpy(x).to(self.device)), 2).cpu().numpy()
        self.train_mode()
        return p

    def best_state(self):
        return self.model.state_dict()

    def save(self, d: Path, best) -> None:
        import torch

        torch.save(self.model.state_dict(), d / "model.pt")
        torch.save({"opt": self.opt.state_dict(), "sched": self.sched.state_dict()}, d / "opt.pt")
        if best is not None:
            torch.save(best, d / "best.pt")

    def load(self, d: Path) -> None:
        import torch

        self.model.load_state_dict(torch.load(d / "model.pt", map_location=self.device))
        st = torch.load(d / "opt.pt", map_location=self.device)
        self.opt.load_state_dict(st["opt"])
        self.sched.load_state_dict(st["sched"])

    def finish(self, d: Path) -> None:
        import torch

        from wordrec.models.paddle_rec import twin

        self.model.load_state_dict(torch.load(d / "best.pt", map_location=self.device))
        twin.to_paddle(self.model.cpu(), self.paddle_model)
        self.paddle_model.eval()


def distill_loss(student_logits, teacher_logits, temperature: float):
    """KL(teacher || student) per CTC frame, summed over classes, mean over frames and batch, x T^2 (so its
    gradient keeps its scale whatever T). The frames align one to one: both networks stride the same input by 8."""
    import torch.nn.functional as F

    t = temperature
    s_logp = (student_logits / t).log_softmax(2)
    t_logp = (teacher_logits.detach() / t).log_softmax(2)
    kl = F.kl_div(s_logp, t_logp, log_target=True, reduction="none").sum(2)
    return kl.mean() * t * t


def load_teacher(spec: str, charset: Charset, inp, charset_spec: str):
    """The distillation teacher as an eval-mode torch twin without gradients: `ppocrv3` (the `pretrained`
    stage's import) or a Paddle model dir of PP-OCRv3's layout, checked against the student's charset and
    input (it reads the student's batches)."""
    from wordrec.models.paddle_rec import twin
    from wordrec.models.paddle_rec.model import ARCHS, build
    from wordrec.models.paddle_rec.ppocr_import import IMPORTABLE, model_cfg

    d = PRETRAINED_DIR / spec if spec in IMPORTABLE else Path(spec)
    meta = ModelMeta.load(d)
    if meta.arch != ARCHS["svtr"]:
        raise ConfigError(f"distill.teacher {d}: arch {meta.arch!r}, expected PP-OCRv3's {ARCHS['svtr']!r}")
    if meta.input.height != int(inp.height) or meta.input.channel_order != str(inp.get("channel_order", "rgb")):
        raise ConfigError(f"distill.teacher {d}: input height {meta.input.height} / {meta.input.channel_order}, "
                          f"the student's is {inp.height} / {inp.get('channel_order', 'rgb')}")
    import paddle

    with paddle.utils.unique_name.guard():
        pm = build(model_cfg("ppocrv3", charset_spec), charset.num_classes)
    load_params(pm, d, charset, ARCHS["svtr"])
    tw = twin.from_paddle(pm)
    tw.eval()
    for p in tw.parameters():
        p.requires_grad_(False)
    return tw


def torch_device(want: str) -> str:
    """train.device -> the torch engine's device (wants_gpu)."""
    import torch

    return "cuda" if wants_gpu(want, torch.cuda.is_available, "torch") else "cpu"


PRETRAINED_DIR = Path("models/pretrained_paddle")  # the `pretrained` stage's Paddle imports (repo-relative, as DVC)


def init_dir(mcfg, tcfg) -> Path | None:
    """Where the weights to start from live: train.init (a model dir, the grid's/sweeps' override) if set, else the
    model's own `init`: scratch -> None, an importable PaddleOCR name (ppocrv3) -> PRETRAINED_DIR/<name>, anything
    else a Paddle model dir."""
    from wordrec.models.paddle_rec.ppocr_import import IMPORTABLE

    if tcfg.get("init"):
        return Path(tcfg.init)
    init = str(mcfg.get("init") or "scratch")
    if init == "scratch":
        return None
    return PRETRAINED_DIR / init if init in IMPORTABLE else Path(init)


BACKBONE = "backbone."  # state_dict prefix of MobileNetV1Enhance, the part every neck shares


def load_params(model, init_dir: Path, charset: Charset, arch: str | None = None) -> tuple[ModelMeta, str]:
    """Fine-tune from a Paddle model dir (its best.pdparams: trained, or a `pretrained` import), checked against
    its meta's charset and tensor by tensor against the model. Returns (the dir's meta, what loaded: "all" or
    "backbone").

    Same arch: every tensor loads. Another neck (ppocrv3's svtr into the Arm-flow reshape model, or back): only
    the backbone, every one of its tensors present and shape-checked; the neck and head keep their
    initialisation, since their shapes (and the head's input features) differ."""
    import paddle

    from wordrec.models.paddle_rec.model import ARCHS

    meta = ModelMeta.load(init_dir)
    if meta.framework != "paddle" or meta.charset.chars != charset.chars:
        raise DataError(f"{init_dir}: train.init must be a Paddle model dir with charset {charset.chars!r}")
    if arch is not None and meta.arch != arch and meta.arch not in ARCHS.values():
        raise DataError(f"{init_dir}: its arch {meta.arch!r} is not the model's {arch!r} and shares no backbone "
                        f"with it (expected one of {sorted(ARCHS.values())})")
    part = "all" if arch is None or meta.arch == arch else "backbone"
    path = init_dir / "best.pdparams"
    try:
        state = paddle.load(str(path))
    except Exception as e:  # truncated/garbage parameter files
        raise DataError(f"{path}: corrupt model file ({one_line(e)[:200]})") from None
    own = model.state_dict()
    if part == "backbone":
        own = {k: v for k, v in own.items() if k.startswith(BACKBONE)}
        missing = [k for k in own if k not in state]
        if missing:
            raise DataError(f"{path}: backbone tensor {missing[0]!r} is missing ({len(missing)} of {len(own)} "
                            f"backbone tensors; arch {meta.arch!r})")
        state = {k: state[k] for k in own}
    bad = [k for k in own if k in state and list(state[k].shape) != list(own[k].shape)]
    if bad:
        raise DataError(f"{path}: tensor {bad[0]!r} has shape {list(state[bad[0]].shape)}, "
                        f"the model expects {list(own[bad[0]].shape)}")
    if part == "backbone":  # the neck and head load their own tensors back (Paddle warns about absent keys)
        state = {**{k: v for k, v in model.state_dict().items() if k not in own}, **state}
    missing, unexpected = model.set_state_dict(state)
    if missing or unexpected:
        raise DataError(f"{path}: does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return meta, part


def validation_path(mcfg, data_dir: Path) -> tuple[Path, str]:
    """(LMDB that picks the kept weights, its name). `select_on` (real crops: a dev set chooses among checkpoints
    and the untouched init, it is never trained on) when its LMDB is present, else DATA/val (synthetic): a fresh
    clone without the real sets still trains, and meta.json's train.selected_on says which set chose."""
    sel = mcfg.get("select_on")
    if sel:
        sel = Path(sel)
        if sel.resolve() == (data_dir / "train").resolve():
            raise ConfigError(f"select_on {sel}: that is the training set")
        if (sel / "data.mdb").is_file():
            return sel, str(sel)
        print(f"select_on {sel}: no LMDB there; selecting on {data_dir / 'val'}")
    return data_dir / "val", str(data_dir / "val")


def _save_ckpt(ckpt_dir: Path, engine, state: dict, best_state=None) -> None:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    best_file = engine.files[-1]
    with atomic_dir(ckpt_dir / "current") as tmp:
        engine.save(tmp, best_state)
        old_best = ckpt_dir / "current" / best_file
        if best_state is None and old_best.is_file():
            shutil.copy2(old_best, tmp / best_file)
        write_json(tmp / "state.json", state)


def _load_ckpt(ckpt_dir: Path, want_hash: str, files: tuple[str, ...]):
    cur = ckpt_dir / "current"
    if not (cur / "state.json").is_file():
        return None
    state = json.loads((cur / "state.json").read_text())
    if state.get("config_hash") != want_hash or not all((cur / f).is_file() for f in files):
        return None
    return state


def fit(name: str, mcfg, tcfg, data_dir: Path, out_dir: Path, ckpt_dir: Path, plots_dir: Path) -> dict:
    """Train train.models.<name> (a Paddle model) on DATA/{train,val}; write the model dir. See the module doc."""
    if mcfg.framework != "paddle":
        raise ConfigError(f"params train.models.{name}.framework: expected paddle, got {mcfg.framework!r}")
    threads = threads_for(mcfg, tcfg)
    set_threads(threads, str(tcfg.get("device") or "cpu"))  # train.device; meta records the device used
    from wordrec.models.paddle_rec.data import RecDataset
    from wordrec.models.paddle_rec.model import time_steps

    data_dir, out_dir, ckpt_dir, plots_dir = map(Path, (data_dir, out_dir, ckpt_dir, plots_dir))
    charset = Charset.from_spec(mcfg.charset)
    check_charset(charset)
    check_input(mcfg.input)
    steps_t = time_steps(mcfg.input.width)
    opened = []

    def open_set(path: Path, bda=None):
        opened.append(RecDataset(path, charset, mcfg.input, steps_t, bda, int(tcfg.seed)))
        return opened[-1]

    try:
        train_ds = open_set(data_dir / "train", mcfg.augment)
        val_path, selected_on = validation_path(mcfg, data_dir)
        val_ds = open_set(val_path)
        val_ds.name = selected_on
        lines = None
        if lines_fraction(mcfg) > 0:
            for split in LINE_SPLITS:
                if not (data_dir / split / "data.mdb").is_file():
                    raise DataError(f"{data_dir / split}: no LMDB there (train.models.{name}.lines_fraction > 0 "
                                    "trains on synth's lines splits: set synth.lines.n_train and n_val)")
            lines = (open_set(data_dir / LINE_SPLITS[0], mcfg.augment), open_set(data_dir / LINE_SPLITS[1]))
            lines[1].name = str(data_dir / LINE_SPLITS[1])
        import paddle

        # Optimizer state is keyed by generated parameter/accumulator names; a fresh name scope makes them the
        # same in every run (also several runs in one process), so a checkpoint can be resumed.
        with paddle.utils.unique_name.guard():
            return _fit(name, mcfg, tcfg, threads, data_dir, out_dir, ckpt_dir, plots_dir, charset, train_ds,
                        val_ds, lines)
    finally:
        for ds in opened:
            ds.close()


def select_score(words: dict, lines: dict | None, metric: str) -> float:
    """What a validation is ranked by: `metric` on the selection set (words); a model that also trains on lines
    is ranked by the mean of that and exact `accuracy` on lines_val (spaces count: `accuracy_alnum_ci` would drop
    them, and word gaps are what line training teaches), since it must read both."""
    return words[metric] if lines is None else (words[metric] + lines["accuracy"]) / 2


def replaces(cand: dict, best: dict, margin: float, init_words: float | None, max_drop: float) -> bool:
    """Whether validation result `cand` ({val_acc, val_words, val_loss}) replaces the kept `best`: a higher score
    by `margin` (the untouched init is only displaced by select_min_gain), ties on score going to the lower loss
    (e.g. all 0 on the CTC plateau); never when its word score is more than `max_drop` below the init's
    (`init_words`, None without an init): line training must not cost the word crops."""
    if init_words is not None and cand["val_words"] < init_words - max_drop:
        return False
    return (cand["val_acc"] - margin, -cand["val_loss"]) > (best["val_acc"], -best["val_loss"])


def _fit(name, mcfg, tcfg, threads, data_dir, out_dir, ckpt_dir, plots_dir, charset, train_ds, val_ds,
         lines=None) -> dict:
    import paddle
    from tqdm import tqdm

    from wordrec.models.paddle_rec.export import save_inference
    from wordrec.models.paddle_rec.model import arch_name, build

    # The common overrides (grid, sweeps) apply as for torch: train.epochs sets the budget in passes.
    bs = int(tcfg.batch_size if tcfg.get("batch_size") is not None else mcfg.batch_size)
    lr = float(tcfg.lr if tcfg.get("lr") is not None else mcfg.lr)
    inp, seed = mcfg.input, int(tcfg.seed)
    steps_t = train_ds.steps
    if len(train_ds) < bs:
        raise DataError(f"{data_dir / 'train'}: {len(train_ds)} usable samples, fewer than batch_size {bs}")
    if len(val_ds) == 0:
        raise DataError(f"{data_dir / 'val'}: no usable samples for charset {mcfg.charset!r}")

    paddle.seed(seed)
    model = build(mcfg, charset.num_classes)
    init = init_dir(mcfg, tcfg)
    init_meta, init_part = load_params(model, init, charset, arch_name(mcfg)) if init is not None else (None, None)
    if init_part == "backbone":
        print(f"[{name}] init {init}: backbone only ({init_meta.arch} -> {arch_name(mcfg)}); neck and head start "
              "from their initialisation")
    if mcfg.get("freeze_backbone"):
        if init is None:
            raise ConfigError(f"train.models.{name}.freeze_backbone: needs init (a frozen random backbone learns "
                              "nothing)")
        model.freeze_backbone(int(mcfg.get("train_last_blocks") or 0), float(mcfg.get("backbone_lr_scale") or 1.0))
    total = int(mcfg.steps) if tcfg.get("epochs") is None else \
        max(1, math.ceil(float(tcfg.epochs) * len(train_ds) / bs))
    warm = min(int(mcfg.warmup_steps), total - 1)
    engine_name = str(mcfg.get("engine") or "paddle")
    if engine_name == "torch":
        import torch

        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        teacher = (load_teacher(str(mcfg.distill.teacher), charset, inp, str(mcfg.charset))
                   if mcfg.get("distill") and mcfg.distill.get("teacher") else None)
        engine = TorchEngine(model, mcfg, lr, total, warm, torch_device(str(tcfg.get("device") or "cpu")),
                             teacher)
    elif engine_name == "paddle":
        engine = PaddleEngine(model, mcfg, lr, total, warm)
    else:
        raise ConfigError(f"train.models.{name}.engine: expected paddle | torch, got {engine_name!r}")
    trainable = engine.trainable

    metric = str(mcfg.get("select_metric") or "accuracy")  # the validation measure that picks the kept weights
    n_lines = lines_per_batch(bs, lines_fraction(mcfg)) if lines is not None else 0
    max_drop = float(mcfg.get("select_max_word_drop") if mcfg.get("select_max_word_drop") is not None else 1.0)
    if n_lines and len(lines[0]) < n_lines:
        raise DataError(f"{data_dir / LINE_SPLITS[0]}: {len(lines[0])} usable samples, fewer than the {n_lines} "
                        "lines per batch")

    def validate(at: int) -> dict:
        """The current weights' validation record at step `at`: {val_acc (what selection ranks), val_words,
        val_ned, val_loss (words' mean CTC loss), step[, val_lines_accuracy, val_lines_ned]}."""
        m, vloss = evaluate(engine.probs, val_ds, int(mcfg.val_images), bs)
        ml = evaluate(engine.probs, lines[1], int(mcfg.val_images), bs)[0] if lines is not None else None
        rec = {"val_acc": select_score(m, ml, metric), "val_words": m[metric], "val_ned": m["ned"],
               "val_loss": vloss, "step": at}
        return rec if ml is None else {**rec, "val_lines_accuracy": ml["accuracy"], "val_lines_ned": ml["ned"]}

    def parts(rec: dict) -> str:
        """" (words W, lines L)" for a model that also reads lines, else ""."""
        return (f" (words {rec['val_words']:.4f}, lines {rec['val_lines_accuracy']:.4f})"
                if "val_lines_accuracy" in rec else "")
    chash = config_hash(mcfg, tcfg, data_dir)
    state = _load_ckpt(ckpt_dir, chash, engine.files)
    step, history, best = 0, [], {"val_acc": -1.0, "val_loss": math.inf, "step": 0}
    init_words = None  # the untouched init's word score, which select_max_word_drop is measured from
    if state is not None:
        engine.load(ckpt_dir / "current")
        step, history, best, init_words = state["step"], state["history"], state["best"], state.get("init_words")
        # said, not recorded in meta.json: a resumed run's outputs equal an uninterrupted run's byte for byte
        print(f"[{name}] resuming from {ckpt_dir / 'current'} at step {step}")
    elif init is not None:
        # The untouched init is the first candidate: fine-tuning only replaces it if it beats it on validation.
        best = validate(0)
        print(f"[{name}] init {init}: val_acc {best['val_acc']:.4f} val_loss {best['val_loss']:.4f}{parts(best)} "
              f"on {val_ds.name}" + (f" and {lines[1].name}" if lines is not None else ""))
        init_words = best["val_words"]
        _save_ckpt(ckpt_dir, engine, {"config_hash": chash, "step": 0, "history": history, "best": best,
                                      "init_words": init_words}, engine.best_state())

    t_run, seen, loss_sum, loss_n = time.perf_counter(), 0, 0.0, 0
    t_mark = t_run
    bar = tqdm(total=total, initial=step, desc=f"train {name}", unit="step", dynamic_ncols=True)
    while step < total:
        train_ds.epoch, order = batch_order(step, len(train_ds), bs - n_lines, seed)
        items = [train_ds[int(k)] for k in order]
        if n_lines:
            lines[0].epoch, order = batch_order(step, len(lines[0]), n_lines, seed, stream=1)
            items += [lines[0][int(k)] for k in order]
        xb, yb, lb = zip(*items)
        loss = engine.step(np.stack(xb), np.stack(yb), np.stack(lb))
        step += 1
        seen += bs
        loss_sum, loss_n = loss_sum + loss, loss_n + 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        if step % int(mcfg.val_every) == 0 or step == total:
            ips = seen / (time.perf_counter() - t_mark)
            cand = validate(step)
            lines_cols = ({"val_words_accuracy": cand["val_words"], "val_lines_accuracy": cand["val_lines_accuracy"],
                           "val_lines_ned": cand["val_lines_ned"]} if lines is not None else {})
            history.append({"step": step, "epoch": round(step * (bs - n_lines) / len(train_ds), 3),
                            "lr": engine.lr(), "train_loss": loss_sum / loss_n, "val_accuracy": cand["val_acc"],
                            "val_ned": cand["val_ned"], **lines_cols, "images_per_second": round(ips, 2)})
            bar.write(f"step {step}: train_loss {loss_sum / loss_n:.4f} val_loss {cand['val_loss']:.4f} "
                      f"val_acc {cand['val_acc']:.4f}{parts(cand)}")
            best_state = None
            margin = float(mcfg.get("select_min_gain") or 0.0) if init is not None and best["step"] == 0 else 0.0
            if replaces(cand, best, margin, init_words, max_drop):
                best = cand
                best_state = engine.best_state()
            _save_ckpt(ckpt_dir, engine, {"config_hash": chash, "step": step, "history": history,
                                          "best": best, "init_words": init_words}, best_state)
            seen, loss_sum, loss_n, t_mark = 0, 0.0, 0, time.perf_counter()
    bar.close()
    train_seconds = time.perf_counter() - t_run

    engine.finish(ckpt_dir / "current")
    train = {
        "val_accuracy": best["val_acc"], "val_ned": best.get("val_ned"), "best_step": best["step"],
        "total_steps": total, "seq_len": steps_t, "params": int(sum(p.size for p in model.parameters())),
        "batch_size": bs, "lr": lr, "epochs": round(total * (bs - n_lines) / len(train_ds), 4),
        "train_images": len(train_ds), **({"lines_per_batch": n_lines, "train_lines": len(lines[0]),
                                           "val_words_accuracy": best.get("val_words"),
                                           "val_lines_accuracy": best.get("val_lines_accuracy"),
                                           "val_lines_ned": best.get("val_lines_ned"),
                                           "selected_on_lines": lines[1].name} if n_lines else {}),
        "train_seconds": round(train_seconds, 1),
        "images_per_second": round(float(np.median([h["images_per_second"] for h in history])), 2),
        "threads": threads, "engine": engine_name,
        "device": engine.device, "config_hash": chash,
        "init": str(init) if init is not None else None,
        "init_loaded": init_part,  # all | backbone (the init had another neck) | null (scratch)
        "trainable_params": int(sum(np.prod(p.shape) for p in trainable)),
        "val_loss": round(best["val_loss"], 4),
        "skipped_train": train_ds.skipped, "skipped_val": val_ds.skipped,
        **({"skipped_train_lines": lines[0].skipped} if n_lines else {}),
        "selected_on": val_ds.name, "select_metric": metric,
    }
    sections = {"train": train}
    if init_meta is not None and init_meta.section("source"):
        sections["source"] = init_meta.section("source")  # the weights' origin and licence carry over
    meta = ModelMeta(name, "paddle", arch_name(mcfg), charset,
                     InputSpec(int(inp.channels), int(inp.height), int(inp.width), True,
                               str(inp.get("channel_order", "rgb"))), sections)
    with atomic_dir(out_dir) as tmp:
        paddle.save(model.state_dict(), str(tmp / "best.pdparams"))
        save_inference(model, tmp / "inference", charset, inp)
        write_curve_files(history, tmp, name)
        meta.save(tmp)
    write_curve_files(history, plots_dir, name)
    return {k: train[k] for k in ("val_accuracy", "val_ned", "best_step", "total_steps", "images_per_second",
                                  "params", "train_seconds")}
