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
from wordrec.device.board import sim, toolchain

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
    ld.write_text(toolchain.linker_script("dtcm", "sram"))
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


def benchmark_calls(lib: int8_host.HostLib, seed: int = 0) -> list[tuple[str, str, int, Call]]:
    """The reference shapes of docs/int8_kernels.md: (name, description, MACs, call) with random data."""
    rng = np.random.default_rng(seed)

    def r8(*shape):
        return rng.integers(-128, 128, shape).astype(np.int8)

    def rq(n):
        return rng.integers(2**30, 2**31 - 1, n), rng.integers(-12, 0, n)

    q = (3, -5, -128, 127)
    out = []
    m, s = rq(128)
    out.append(("conv1x1", "1x1 conv, 16x40 pixels, 64->128", 16 * 40 * 64 * 128,
                int8_host.conv1x1_call(r8(16, 40, 64), r8(128, 64), rng.integers(-999, 999, 128), m, s, *q)))
    m, s = rq(16)
    oh, ow = int8_host.conv_out_dim(48, 3, 2, 1, 1), int8_host.conv_out_dim(320, 3, 2, 1, 1)
    out.append(("conv3x3", f"3x3 conv, 48x320x3 -> {oh}x{ow}x16, stride 2, pad 1", oh * ow * 16 * 27,
                int8_host.conv_call(r8(48, 320, 3), r8(16, 3, 3, 3), None, m, s, *q, (2, 2), (1, 1), (oh, ow), lib)))
    for k in (3, 5):
        m, s = rq(128)
        out.append((f"dwconv{k}x{k}", f"depthwise {k}x{k}, 12x80x128, stride 1, pad {k // 2}", 12 * 80 * 128 * k * k,
                    int8_host.dwconv_call(r8(12, 80, 128), r8(k, k, 128), None, m, s, *q, (1, 1), (k // 2, k // 2),
                                          (12, 80), lib)))
    out += dwconv_f32_calls(rng, r8)
    out += dwconv3x3_q8_calls(lib, rng, r8)
    m, s = rq(96)
    out.append(("fc", "FC, 40x120 -> 40x96", 40 * 120 * 96,
                int8_host.fc_call(r8(40, 120), r8(96, 120), None, m, s, *q)))
    out.append(("matmul", "activation matmul, 40x64 . (40x64)^T -> 40x40", 40 * 64 * 40,
                int8_host.matmul_call(r8(40, 64), r8(40, 64), 3, -7, 1500000000, -12, 2, -128, 127, lib)))
    return out + model_calls(lib, r8, rq, q)


# ppocrv6_small's depthwise layers (in_h, in_w, c, k_h, k_w, stride, pad), as its compiled runner calls
# wrnn_dwconv_s8_f32 (13 calls of the five 3x3 shapes, one 1x7)
PPOCRV6_DW = [(12, 80, 96, 3, 3, (1, 1), (1, 1)), (12, 80, 96, 3, 3, (2, 1), (1, 1)),
              (6, 80, 192, 3, 3, (1, 1), (1, 1)), (6, 80, 192, 3, 3, (2, 1), (1, 1)),
              (3, 80, 384, 3, 3, (1, 1), (1, 1)), (1, 40, 120, 1, 7, (1, 1), (0, 3))]


def dwconv_f32_calls(rng, r8) -> list[tuple[str, str, int, Call]]:
    """wrnn_dwconv_s8_f32 (per-channel input zero points, float out) on the benchmark's 12x80x128 3x3 and on
    ppocrv6_small's depthwise shapes."""
    out = []
    for i, (h, w, c, kh, kw, st, pad) in enumerate([(12, 80, 128, 3, 3, (1, 1), (1, 1))] + PPOCRV6_DW):
        oh = int8_host.conv_out_dim(h, kh, st[0], pad[0], pad[0])
        ow = int8_host.conv_out_dim(w, kw, st[1], pad[1], pad[1])
        call = int8_host.dwconv_f32_call(r8(h, w, c), r8(kh, kw, c), rng.integers(-128, 128, c),
                                         rng.random(c).astype(np.float32) * 1e-3, rng.standard_normal(c), st, pad,
                                         (oh, ow))
        name = "dwconv_f32_3x3" if i == 0 else f"ppocrv6/dw{i - 1}"
        out.append((name, f"depthwise f32-out {kh}x{kw}, {h}x{w}x{c}, stride {st[0]}x{st[1]}, pad {pad[0]}x{pad[1]}",
                    oh * ow * c * kh * kw, call))
    return out


def dwconv3x3_q8_calls(lib, rng, r8) -> list[tuple[str, str, int, Call]]:
    """wrnn_dwconv3x3_s8_q8 (the depthwise with its output quantize, one quantizer per tensor) on ppocrv6_small's
    3x3 shapes."""
    out = []
    for i, (h, w, c, kh, kw, st, pad) in enumerate(PPOCRV6_DW):
        if (kh, kw) != (3, 3):
            continue
        oh = int8_host.conv_out_dim(h, kh, st[0], pad[0], pad[0])
        ow = int8_host.conv_out_dim(w, kw, st[1], pad[1], pad[1])
        call = int8_host.dwconv_q8_call(r8(h, w, c), r8(kh, kw, c), rng.integers(-128, 128, c),
                                        rng.random(c).astype(np.float32) * 1e-3, rng.standard_normal(c), st, pad,
                                        (oh, ow), np.full(c, 0.05, np.float32), np.full(c, -3.0, np.float32),
                                        False, lib, "dwconv3x3_q8")
        out.append((f"ppocrv6/dwq{i}", f"depthwise 3x3 + quantize, {h}x{w}x{c}, stride {st[0]}x{st[1]}, pad "
                    f"{pad[0]}x{pad[1]}", oh * ow * c * kh * kw, call))
    return out


# A MobileNet-style conv body for a 32x128 word image (stem conv, then depthwise-separable blocks):
# (kind, in_h, in_w, in_c, out_c, k, stride_h, stride_w)
MODEL_LAYERS = [("conv", 32, 128, 3, 16, 3, 2, 2),
                ("dw", 16, 64, 16, 16, 3, 1, 1), ("pw", 16, 64, 16, 32, 1, 1, 1),
                ("dw", 16, 64, 32, 32, 3, 2, 2), ("pw", 8, 32, 32, 64, 1, 1, 1),
                ("dw", 8, 32, 64, 64, 3, 1, 1), ("pw", 8, 32, 64, 64, 1, 1, 1),
                ("dw", 8, 32, 64, 64, 3, 2, 1), ("pw", 4, 32, 64, 128, 1, 1, 1),
                ("dw", 4, 32, 128, 128, 3, 1, 1), ("pw", 4, 32, 128, 128, 1, 1, 1)]


def model_calls(lib, r8, rq, q) -> list[tuple[str, str, int, Call]]:
    """One call per MODEL_LAYERS entry, named model/<i>-<kind> (random data of the layer's shapes: the kernels'
    instruction counts do not depend on the values)."""
    out = []
    for i, (kind, h, w, ci, co, k, sh, sw) in enumerate(MODEL_LAYERS):
        m, s = rq(co)
        pad = k // 2
        oh, ow = int8_host.conv_out_dim(h, k, sh, pad, pad), int8_host.conv_out_dim(w, k, sw, pad, pad)
        desc = f"{kind} {k}x{k} {h}x{w}x{ci} -> {oh}x{ow}x{co}, stride {sh}x{sw}"
        if kind == "conv":
            call = int8_host.conv_call(r8(h, w, ci), r8(co, k, k, ci), None, m, s, *q, (sh, sw), (pad, pad), (oh, ow),
                                       lib)
            macs = oh * ow * co * k * k * ci
        elif kind == "dw":
            call = int8_host.dwconv_call(r8(h, w, ci), r8(k, k, ci), None, m, s, *q, (sh, sw), (pad, pad), (oh, ow),
                                         lib)
            macs = oh * ow * ci * k * k
        else:
            call = int8_host.conv1x1_call(r8(h, w, ci), r8(co, ci), None, m, s, *q)
            macs = h * w * ci * co
        out.append((f"model/{i}-{kind}", desc, macs, call))
    return out


def measure(lib: int8_host.HostLib, build_dir: Path, work: Path) -> list[dict]:
    """Run the benchmark shapes on QEMU: per kernel MACs, executed instructions, MACs/instruction, host match."""
    bench = benchmark_calls(lib)
    res = run_qemu([b[3] for b in bench], work, build_dir, timeout_s=300)
    rows = []
    for (name, desc, macs, call), (rc, got), insns in zip(bench, res["results"], res["insns"]):
        host_rc, host = lib.run(call)
        rows.append({"name": name, "desc": desc, "macs": macs, "insns": insns, "macs_per_insn": macs / insns,
                     "match": rc == 0 == host_rc and bool(np.array_equal(got, host))})
    return rows


def main() -> None:
    """python -m wordrec.device.int8_qemu [BUILD_DIR]: print the MACs/instruction table (markdown)."""
    import sys
    import tempfile

    build = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="wrnn_"))
    rows = measure(int8_host.HostLib(build), build, build / "work")
    print("| kernel | shape | MACs | instructions | MACs/instruction | device == host |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['name']} | {r['desc']} | {r['macs']:,} | {r['insns']:,} | {r['macs_per_insn']:.2f} | "
              f"{'yes' if r['match'] else 'NO'} |")
    body = [r for r in rows if r["name"].startswith("model/")]
    macs, insns = sum(r["macs"] for r in body), sum(r["insns"] for r in body)
    print(f"| model (sum) | the {len(body)} model/ layers above | {macs:,} | {insns:,} | {macs / insns:.2f} | "
          f"{'yes' if all(r['match'] for r in body) else 'NO'} |")


if __name__ == "__main__":
    main()
