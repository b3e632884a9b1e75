"""The emitted device C built natively for the host: the bit-exact reference of an int8 (offloaded) build.

The same device/ sources (TVM's C kernels, runner, weights, wrnn.c) compiled by the system gcc with -DWRNN_SCALAR
(wrnn's portable path, bit-identical to Helium by the library's contract) into a shared library called through
ctypes. Floating-point contraction is off here and on the device (FLOAT_CFLAGS): gcc contracts a*b+c into an
FMA on the M55 but not on x86-64 by default, which would change the float stem's last bits and so, at a rounding
tie, the int8 tensor after its quantize.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from wordrec.errors import ConfigError, DataError

FLOAT_CFLAGS = ["-ffp-contract=off"]  # on both builds of an int8 model (see the module doc)
HOST_CFLAGS = ["-O2", "-fPIC", "-shared", "-std=gnu99", "-DWRNN_SCALAR", *FLOAT_CFLAGS]


def build(device_dir: Path, out_so: Path) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise ConfigError("no host C compiler (gcc) for the int8 model's host reference build")
    device_dir, out_so = Path(device_dir), Path(out_so)
    out_so.parent.mkdir(parents=True, exist_ok=True)
    srcs = sorted(str(p) for p in device_dir.glob("*.c"))
    cmd = [cc, *HOST_CFLAGS, "-I", str(device_dir), "-o", str(out_so), *srcs, "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise DataError(f"host build of {device_dir} failed:\n{res.stderr[-2000:]}")
    return out_so


class NativeModel:
    """wordrec_run of a native build: probs(x[N, C, H, W]) -> float32[N, T, K]; `probes` holds the last int8
    tensor of each input of the last call (None for a model without one)."""

    def __init__(self, so: Path, device_dir: Path | None = None, out_shape=None):
        so = Path(so)
        self.out_shape = tuple(out_shape) if out_shape is not None else None
        header = (Path(device_dir) if device_dir else so.parent) / "wordrec_model.h"
        if not header.is_file():
            raise DataError(f"{header}: not found (the native build needs the device header beside it)")
        defs = {k: int(v) for k, v in re.findall(r"#define (WORDREC_\w+) (\d+)", header.read_text())}
        self.n_in, self.n_out = defs["WORDREC_INPUT_ELEMS"], defs["WORDREC_OUTPUT_ELEMS"]
        self.probe_bytes = defs.get("WORDREC_PROBE_BYTES", 0)
        self.lib = ctypes.CDLL(str(so.resolve()))
        self.lib.wordrec_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.lib.wordrec_run.restype = ctypes.c_int
        self.lib.wordrec_last_error.restype = ctypes.c_char_p
        if self.probe_bytes:
            self.lib.wordrec_probe.restype = ctypes.POINTER(ctypes.c_int8)
        self.probes = None

    def probs(self, x: np.ndarray, out_shape=None) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32).reshape(len(x), -1)
        if x.shape[1] != self.n_in:
            raise DataError(f"native model: input has {x.shape[1]} elements, expected {self.n_in}")
        out = np.zeros((len(x), self.n_out), np.float32)
        probes = np.zeros((len(x), self.probe_bytes), np.int8)
        for i in range(len(x)):
            rc = self.lib.wordrec_run(x[i].ctypes.data, out[i].ctypes.data)
            if rc:
                raise DataError(f"native model: kernel call {rc - 1} failed: "
                                f"{self.lib.wordrec_last_error().decode()}")
            if self.probe_bytes:
                probes[i] = np.ctypeslib.as_array(self.lib.wordrec_probe(), (self.probe_bytes,))
        self.probes = probes if self.probe_bytes else None
        out_shape = out_shape or self.out_shape
        return out if out_shape is None else out.reshape(len(x), *out_shape)
