"""Training loop for the torch recognizers: `fit(name, mcfg, tcfg, data_dir, out_dir, ckpt_dir, plots_dir)`.

CTC loss (torch.nn.CTCLoss), AdamW with a warmup-hold-cosine schedule, gradient clipping,
validation every `val_every` steps and at the end, best-by-val weights. Resumable: at every validation the full
training state goes to `ckpt_dir/last.pt` (a DVC `persist` output, since DVC deletes a stage's outs before it
runs); a later run with the same config hash continues from there and ends with the same weights as an
uninterrupted run (per-sample augmentation seeds, seeded epoch permutations, no dropout).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from wordrec.data.charset import Charset
from wordrec.errors import ConfigError, DataError
from wordrec.infer.decode import texts
from wordrec.io import atomic_dir, atomic_file
from wordrec.models.meta import InputSpec, ModelMeta
from wordrec.models.torch_rec.data import EpochBatches, WordDataset, collate
from wordrec.models.torch_rec.models import build_model, load_checkpoint, seq_len
from wordrec.models.training import write_curve_files
from wordrec.pipeline.metrics import score


def on_checkpoint(step: int) -> None:
    """Hook called after each checkpoint is written (tests use it to simulate a kill)."""


def resolve(mcfg, tcfg) -> dict:
    """Effective per-model config: the model's section with the common overrides applied."""
    c = OmegaConf.to_container(mcfg, resolve=True) if isinstance(mcfg, DictConfig) else dict(mcfg)
    for k in ("lr", "batch_size", "epochs"):
        if tcfg.get(k) is not None:
            c[k] = tcfg[k]
    if c["framework"] != "torch":
        raise ConfigError(f"train.models: framework {c['framework']!r} is not handled by the torch trainer")
    return c


def config_hash(c: dict, tcfg, data_dir: Path) -> str:
    ident = {"model": c, "seed": tcfg.seed, "threads": tcfg.threads, "init": tcfg.get("init"),
             "data": {s: (data_dir / s / "data.mdb").stat().st_size for s in ("train", "val")}}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def lr_factor(total: int, warmup: float, decay: float):
    """Warmup-hold-decay multiplier of the peak lr: linear from 1/25 over the first `warmup` fraction of the
    steps, flat, then cosine down to 1/1000 over the last `decay` fraction. Holding the peak matters for CTC:
    the all-blank plateau is left only after a few hundred steps at full lr, and a one-cycle schedule over a
    short budget has already decayed by then. warmup + decay = 1 is the classic one-cycle shape."""
    if not (0 <= warmup <= 1 and 0 < decay <= 1 and warmup + decay <= 1):
        raise ConfigError(f"train.models.<name>: need 0 <= warmup, 0 < decay, warmup + decay <= 1; "
                          f"got warmup={warmup}, decay={decay}")
    n_warm, n_decay = warmup * total, decay * total

    def f(step: int) -> float:
        if step < n_warm:
            return 0.04 + 0.96 * step / n_warm
        left = total - step
        if left >= n_decay:
            return 1.0
        return 0.001 + 0.999 * 0.5 * (1 - math.cos(math.pi * left / n_decay))
    return f


@torch.no_grad()
def predict_texts(model, loader, charset: Charset) -> list[str]:
    model.eval()
    out = []
    for x, *_ in loader:
        out += texts(model(x).softmax(2).numpy(), charset)
    model.train()
    return out


def _save(path: Path, obj) -> None:
    with atomic_file(path, "wb") as f:
        torch.save(obj, f)


def fit(name: str, mcfg, tcfg, data_dir: Path, out_dir: Path, ckpt_dir: Path, plots_dir: Path) -> dict:
    c = resolve(mcfg, tcfg)
    data_dir, out_dir, ckpt_dir, plots_dir = map(Path, (data_dir, out_dir, ckpt_dir, plots_dir))
    for split in ("train", "val"):
        if not (data_dir / split / "data.mdb").is_file():
            raise DataError(f"{data_dir / split}: training data missing (run the synth stage)")
    torch.set_num_threads(int(tcfg.threads))
    torch.manual_seed(int(tcfg.seed))
    charset = Charset.from_spec(c["charset"])
    inp = OmegaConf.create(c["input"])
    model = build_model(c["arch"], charset.num_classes, inp.channels, inp.height)
    if tcfg.get("init"):
        load_checkpoint(model, Path(tcfg.init) / "best.pt", charset)
    T = seq_len(model, inp.channels, inp.height, inp.width)
    aug = OmegaConf.create(c["augment"])
    seed, bs = int(tcfg.seed), int(c["batch_size"])
    train_ds = WordDataset(data_dir / "train", charset, inp, T, aug, seed)
    val_ds = WordDataset(data_dir / "val", charset, inp, T, None)
    val_idx = list(range(min(len(val_ds), int(c["val_max"]))))
    steps_per_epoch = len(train_ds) // bs
    if steps_per_epoch == 0:
        raise ConfigError(f"train.models.{name}.batch_size={bs} exceeds the {len(train_ds)} training samples")
    total = max(1, math.ceil(float(c["epochs"]) * steps_per_epoch))
    val_every = min(int(c["val_every"]), total)

    opt = torch.optim.AdamW(model.parameters(), lr=float(c["lr"]), weight_decay=float(c["weight_decay"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(total, float(c["warmup"]), float(c["decay"])))
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    coll = collate(charset)
    val_loader = DataLoader(torch.utils.data.Subset(val_ds, val_idx), batch_size=128, collate_fn=coll)
    val_gts = [val_ds.labels[i] for i in val_idx]

    chash = config_hash(c, tcfg, data_dir)
    step, curves, best, train_seconds = 0, [], {"val_accuracy": -1.0, "step": 0}, 0.0
    last = ckpt_dir / "last.pt"
    if last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        if ck.get("hash") == chash:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
            sched.load_state_dict(ck["sched"])
            step, curves, best, train_seconds = ck["step"], ck["curves"], ck["best"], ck["train_seconds"]
            print(f"[{name}] resuming from {last} at step {step}/{total}")
        else:
            print(f"[{name}] {last} was made with another config; starting afresh")
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    amp = c["amp"] == "bf16"
    if c["amp"] not in (None, "bf16"):
        raise ConfigError(f"train.models.{name}.amp: expected null or bf16, got {c['amp']!r}")
    model.to(memory_format=torch.channels_last)  # oneDNN's fast conv layout on CPU
    model.train()
    bar = tqdm(total=total, initial=step, desc=f"train {name}", unit="step", mininterval=2.0)
    loss_sum, loss_n, seen, t_int = 0.0, 0, 0, 0.0
    while step < total:
        epoch = step // steps_per_epoch
        batches = EpochBatches(len(train_ds), bs, seed, epoch, start=step % steps_per_epoch)
        loader = DataLoader(train_ds, batch_sampler=batches, collate_fn=coll, num_workers=int(tcfg.workers))
        t0 = time.perf_counter()
        for x, targets, lengths, _ in loader:
            opt.zero_grad(set_to_none=True)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            in_len = torch.full((x.shape[0],), logits.shape[1], dtype=torch.long)
            # CTC in fp32 on T x N x K log-probabilities
            loss = ctc(logits.float().log_softmax(2).permute(1, 0, 2), targets, in_len, lengths)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(c["clip"]))
            opt.step()
            sched.step()
            step += 1
            loss_sum, loss_n, seen = loss_sum + loss.item(), loss_n + 1, seen + x.shape[0]
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / loss_n:.3f}", refresh=False)
            if step % val_every == 0 or step == total:
                t_int += time.perf_counter() - t0
                train_seconds += t_int
                m = score(predict_texts(model, val_loader, charset), val_gts)
                row = {"step": step, "epoch": round(step / steps_per_epoch, 4), "lr": sched.get_last_lr()[0],
                       "train_loss": loss_sum / loss_n, "val_accuracy": m["accuracy"], "val_ned": m["ned"],
                       "images_per_second": seen / t_int}
                curves.append(row)
                bar.write(f"[{name}] step {step}: loss {row['train_loss']:.3f} val acc {m['accuracy']:.4f} "
                          f"ned {m['ned']:.4f} ({row['images_per_second']:.1f} img/s)")
                if m["accuracy"] > best["val_accuracy"]:
                    best = {"val_accuracy": m["accuracy"], "val_ned": m["ned"], "step": step}
                    _save(ckpt_dir / "best.pt", {"state_dict": model.state_dict()})
                _save(last, {"hash": chash, "model": model.state_dict(), "opt": opt.state_dict(),
                             "sched": sched.state_dict(), "step": step, "curves": curves, "best": best,
                             "train_seconds": train_seconds})
                on_checkpoint(step)
                loss_sum, loss_n, seen, t_int = 0.0, 0, 0, 0.0
                t0 = time.perf_counter()
                if step >= total:
                    break
        t_int += time.perf_counter() - t0 if step % val_every else 0.0
    bar.close()

    n_params = sum(p.numel() for p in model.parameters())
    train = {
        "val_accuracy": best["val_accuracy"], "val_ned": best.get("val_ned"), "best_step": best["step"],
        "total_steps": total, "seq_len": T, "params": n_params, "batch_size": bs, "lr": c["lr"],
        "epochs": c["epochs"], "train_images": len(train_ds), "train_seconds": round(train_seconds, 1),
        "images_per_second": round(total * bs / train_seconds, 2) if train_seconds else None,
        "threads": int(tcfg.threads), "init": tcfg.get("init"), "config_hash": chash,
    }
    meta = ModelMeta(name, "torch", c["arch"], charset,
                     InputSpec(int(inp.channels), int(inp.height), int(inp.width), bool(inp.keep_ratio)),
                     {"train": train})
    ck_meta = {"name": name, "charset": charset.chars, "arch": c["arch"]}  # what load_checkpoint checks
    best_sd = torch.load(ckpt_dir / "best.pt", map_location="cpu", weights_only=True)["state_dict"]
    with atomic_dir(out_dir) as tmp:
        torch.save({"state_dict": best_sd, "meta": ck_meta}, tmp / "best.pt")
        torch.save({"state_dict": model.state_dict(), "meta": ck_meta}, tmp / "last.pt")
        meta.save(tmp)
        write_curve_files(curves, tmp, name)
    with atomic_dir(plots_dir) as tmp:
        write_curve_files(curves, tmp, name)
    return {k: train[k] for k in ("val_accuracy", "val_ned", "best_step", "total_steps", "params",
                                  "train_seconds", "images_per_second")}
