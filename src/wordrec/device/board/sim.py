"""Run the device ELF on a Corstone-300 simulator over N inputs exchanged as files by semihosting.

QEMU (`mps3-an547`, Arm's SSE-300 FPGA image with a Cortex-M55) is the tested runner; instruction counts come
from the project's TCG plugin (csrc/qemu_insn_count.c). The Arm FVP for Corstone-300 runs the same ELF when it
is on PATH; it cannot be installed on the build machines, so that path is untested and reports no counts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from wordrec.pipeline.config import REPO
from wordrec.errors import ConfigError, DataError
from wordrec.device.board import toolchain

QEMU = "qemu-system-arm"
FVP = "FVP_Corstone_SSE-300_Ethos-U55"
PLUGIN_SRC = REPO / "csrc" / "qemu_insn_count.c"


def build_plugin(build_dir: Path) -> Path:
    """Compile the TCG plugin into build_dir (again only when its sources are newer)."""
    build_dir = Path(build_dir)
    so = build_dir / "qemu_insn_count.so"
    srcs = [PLUGIN_SRC, PLUGIN_SRC.with_name("qemu_plugin_api.h")]
    if so.is_file() and all(so.stat().st_mtime >= s.stat().st_mtime for s in srcs):
        return so
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise ConfigError("no host C compiler (gcc) to build the QEMU plugin csrc/qemu_insn_count.c")
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = so.with_name(f".{so.name}.{os.getpid()}.tmp")  # parallel stages may build at once
    res = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-fvisibility=hidden", "-o", str(tmp),
                          str(PLUGIN_SRC)], capture_output=True, text=True)
    if res.returncode != 0:
        raise DataError(f"building {PLUGIN_SRC} failed:\n{res.stderr[-2000:]}")
    os.replace(tmp, so)
    return so


def check_runner(runner: str) -> None:
    """Fail before any work when the chosen simulator (or the device toolchain) is missing."""
    toolchain.require(toolchain.GCC, "gcc-arm-none-eabi (+ libnewlib-arm-none-eabi)")
    if runner == "qemu":
        toolchain.require(QEMU, "qemu-system-arm")
    elif runner == "fvp":
        if not shutil.which(FVP):
            raise ConfigError(f"mcu.runner=fvp but {FVP} is not on PATH (Arm's Corstone-300 FVP is not "
                              "installable here; use runner=qemu)")
    else:
        raise ConfigError(f"mcu.runner: {runner!r}, expected 'qemu' or 'fvp'")


def _write_inputs(path: Path, xs: np.ndarray) -> None:
    n = xs.shape[0]
    flat = np.ascontiguousarray(xs, dtype="<f4").reshape(n, -1)
    path.write_bytes(np.array([n, flat.shape[1]], "<u4").tobytes() + flat.tobytes())


def _read_outputs(path: Path, n: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"device run wrote no {path.name}")
    raw = path.read_bytes()
    hdr = np.frombuffer(raw[:8], "<u4")
    data = np.frombuffer(raw[8:], "<f4")
    if len(hdr) != 2 or hdr[0] != n or data.size != n * int(hdr[1]):
        raise DataError(f"{path}: expected {n} outputs, got header {hdr.tolist()} and {data.size} floats")
    return data.reshape(n, int(hdr[1]))


def run(elf: Path, xs: np.ndarray, work: Path, *, runner: str, timeout_s: float, plugin_dir: Path,
        windows: int = 1) -> dict:
    """Run `elf` on inputs xs[N, ...]; returns {"outputs": [N, out_elems], "insns": [N * windows] | None, "log",
    "probes": int8 [N, probe bytes] | None}. A profile build (WORDREC_PROFILE_LAYERS) has one instruction window
    per kernel call: `windows` = calls, and `insns` holds N * windows counts."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    _write_inputs(work / "wordrec_in.bin", xs)
    (work / "wordrec_out.bin").unlink(missing_ok=True)
    (work / "wordrec_probe.bin").unlink(missing_ok=True)
    counts = work / "insn_counts.txt"
    if runner == "qemu":
        qemu = toolchain.require(QEMU, "qemu-system-arm")
        plugin = build_plugin(plugin_dir)
        begin, end = toolchain.symbol(elf, "wordrec_mark_begin"), toolchain.symbol(elf, "wordrec_mark_end")
        cmd = [qemu, "-M", "mps3-an547", "-nographic", "-monitor", "none", "-semihosting",
               "-kernel", str(Path(elf).resolve()),
               "-plugin", f"{plugin.resolve()},begin={begin:#x},end={end:#x},out={counts.resolve()}"]
    elif runner == "fvp":
        fvp = shutil.which(FVP)
        if not fvp:
            raise ConfigError(f"mcu.runner=fvp but {FVP} is not on PATH (Arm's Corstone-300 FVP is not "
                              "installable here; use runner=qemu)")
        cmd = [fvp, "-a", str(Path(elf).resolve()), "-C", "mps3_board.visualisation.disable-visualisation=1",
               "-C", "mps3_board.telnetterminal0.start_telnet=0", "-C", "mps3_board.uart0.out_file=-",
               "-C", "cpu0.semihosting-enable=1", "-C", f"cpu0.semihosting-cwd={work.resolve()}"]
    else:
        raise ConfigError(f"mcu.runner: {runner!r}, expected 'qemu' or 'fvp'")
    try:
        res = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise DataError(f"{runner} run of {elf} exceeded mcu.timeout_s={timeout_s}") from e
    log = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        raise DataError(f"{runner} run of {elf} exited with status {res.returncode}: {log[-1000:]}")
    n = xs.shape[0]
    outputs = _read_outputs(work / "wordrec_out.bin", n)
    insns = None
    if runner == "qemu":
        insns = [int(v) for v in counts.read_text().split()] if counts.is_file() else []
        if len(insns) != n * windows:
            raise DataError(f"instruction-count plugin reported {len(insns)} windows for {n} inferences "
                            f"({windows} per inference expected)")
    probe = work / "wordrec_probe.bin"  # int8 builds: the last int8 tensor of each inference
    probes = np.frombuffer(probe.read_bytes(), np.int8).reshape(n, -1) if probe.is_file() else None
    return {"outputs": outputs, "insns": insns, "log": log, "exit_status": res.returncode, "probes": probes}
