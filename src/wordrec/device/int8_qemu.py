"""Run wrnn kernel calls on the emulated Cortex-M55 (QEMU mps3-an547) and count their instructions.

build_elf compiles kernels/*.c (Helium path) + harness/{wrnn_call,main}.c + the project's start-up file and
AN547 linker script into build_dir/wrnn_test-<hash>.elf. run_qemu writes the calls to work/wrnn_calls.bin, runs
the ELF (semihosting, cwd = work), reads work/wrnn_results.bin and the plugin's per-call instruction counts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from wordrec.device import int8_host
from wordrec.device.int8_host import OPS, Call
from wordrec.errors import DataError
from wordrec.mcu import sim, toolchain

MAGIC = 0x434E5257  # "WRNC", harness/main.c
DEVICE_CFLAGS = ["-O3", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections"]


def build_elf(build_dir: Path, extra_cflags: list[str] | None = None) -> Path:
    """Cross-compile the test ELF (cached by source + flag hash); extra_cflags e.g. ["-DWRNN_SCALAR"]."""
    gcc = toolchain.require(toolchain.GCC, "gcc-arm-none-eabi (+ libnewlib-arm-none-eabi)")
    flags = DEVICE_CFLAGS + list(extra_cflags or [])
    build_dir = Path(build_dir)
    elf = build_dir / f"wrnn_test-{int8_host.source_hash(flags + ['elf'])}.elf"
    if elf.is_file():
        return elf
    build_dir.mkdir(parents=True, exist_ok=True)
    # the project's linker script: the kernels use no arena or weights sections, so both go to their defaults
    ld = elf.with_suffix(".ld")
    ld.write_text(toolchain.firmware_file("an547.ld").read_text()
                  .replace("@ARENA_REGION@", "DTCM").replace("@WEIGHTS_REGION@", "SRAM"))
    srcs = [*int8_host.sources(), int8_host.harness_dir() / "main.c", toolchain.firmware_file("startup.c")]
    cmd = [gcc, *toolchain.ARCH_FLAGS, *flags, "-I", str(int8_host.kernels_dir()), "-I",
           str(int8_host.harness_dir()), "-T", str(ld), "-o", str(elf), *map(str, srcs), *toolchain.LINK_FLAGS]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise DataError(f"{toolchain.GCC} failed building {elf.name}:\n{res.stderr[-2000:]}")
    return elf


def _pack(calls: list[Call]) -> bytes:
    parts = [np.array([MAGIC, len(calls)], "<u4").tobytes()]
    for call in calls:
        args = call.arg_array().astype("<i4")
        parts.append(np.array([OPS[call.op], args.size], "<i4").tobytes() + args.tobytes())
        parts.append(np.array([len(call.bufs)], "<u4").tobytes())
        for i, b in enumerate(call.bufs):
            if i == len(call.bufs) - 1:
                raw = np.zeros(int(np.prod(call.out_shape)), np.int8).tobytes()
            else:
                raw = b"" if b is None else np.ascontiguousarray(b).tobytes()
            parts.append(np.array([len(raw)], "<u4").tobytes() + raw + b"\0" * (-len(raw) % 4))
    return b"".join(parts)


def _unpack(raw: bytes, calls: list[Call], path: Path) -> list[tuple[int, np.ndarray]]:
    out, pos = [], 0
    for i, call in enumerate(calls):
        if pos + 8 > len(raw):
            raise DataError(f"{path}: results end after {i} of {len(calls)} calls")
        rc, nbytes = np.frombuffer(raw[pos:pos + 8], "<i4")
        pos += 8
        want = int(np.prod(call.out_shape))
        if nbytes != want:
            raise DataError(f"{path}: call {i} ({call.op}) returned {nbytes} bytes, expected {want}")
        data = np.frombuffer(raw[pos:pos + nbytes], np.int8).reshape(call.out_shape).copy()
        pos += int(nbytes) + (-int(nbytes) % 4)
        out.append((int(rc), data))
    return out


def run_qemu(calls: list[Call], work: Path, build_dir: Path, *, timeout_s: float = 120,
             extra_cflags: list[str] | None = None) -> dict:
    """Run calls in one QEMU boot; returns {"results": [(rc, output)], "insns": [per-call counts]}."""
    qemu = toolchain.require(sim.QEMU, "qemu-system-arm")
    elf = build_elf(build_dir, extra_cflags)
    plugin = sim.build_plugin(build_dir)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "wrnn_calls.bin").write_bytes(_pack(calls))
    results, counts = work / "wrnn_results.bin", work / "insn_counts.txt"
    results.unlink(missing_ok=True)
    counts.unlink(missing_ok=True)
    begin, end = toolchain.symbol(elf, "wordrec_mark_begin"), toolchain.symbol(elf, "wordrec_mark_end")
    cmd = [qemu, "-M", "mps3-an547", "-nographic", "-monitor", "none", "-semihosting", "-kernel", str(elf.resolve()),
           "-plugin", f"{plugin.resolve()},begin={begin:#x},end={end:#x},out={counts.resolve()}"]
    try:
        res = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise DataError(f"QEMU run of {elf.name} exceeded {timeout_s} s") from e
    if res.returncode != 0:
        raise DataError(f"QEMU run of {elf.name} exited with status {res.returncode}: "
                        f"{(res.stdout + res.stderr).strip()[-1000:]}")
    if not results.is_file():
        raise DataError(f"QEMU run of {elf.name} wrote no {results.name}")
    insns = [int(v) for v in counts.read_text().split()] if counts.is_file() else []
    if len(insns) != len(calls):
        raise DataError(f"instruction-count plugin reported {len(insns)} windows for {len(calls)} calls")
    return {"results": _unpack(results.read_bytes(), calls, results), "insns": insns}
