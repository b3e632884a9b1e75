"""arm-none-eabi-gcc build of the device ELF (own start-up and AN547 linker script, newlib rdimon) and its sizes."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from wordrec.errors import ConfigError, DataError

GCC = "arm-none-eabi-gcc"
# Cortex-M55 with MVE (Helium) and the FPU, hard-float ABI; rdimon = newlib semihosting for file I/O and exit.
ARCH_FLAGS = ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"]
LINK_FLAGS = ["--specs=rdimon.specs", "-nostartfiles", "-Wl,--gc-sections", "-lm"]


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise ConfigError(f"{tool} not found on PATH: install Debian package {package} "
                          "(scripts/setup.sh does, from scripts/apt-packages.txt)")
    return path


def firmware_file(name: str) -> Path:
    return Path(str(resources.files("wordrec.device.board") / "firmware" / name))


# AN547 regions (see firmware/an547.ld) and what `auto` picks: the on-chip home when it fits, else the next one.
# ISRAM also holds .data/.bss, the heap and the stack: 256 KB of its 4 MB are kept for them. Arena and weights
# may share ISRAM when both fit in it together (`auto` checks the sum; the linker's ASSERT checks the stack room).
ISRAM_USABLE = (4096 - 256) * 1024
ARENA_REGIONS = {"dtcm": ("DTCM", 512 * 1024), "isram": ("ISRAM", ISRAM_USABLE),
                 "ddr": ("DDR", 128 * 1024 * 1024)}
WEIGHT_REGIONS = {"sram": ("SRAM", 2 * 1024 * 1024), "isram": ("ISRAM", ISRAM_USABLE),
                  "ddr": ("DDR", 256 * 1024 * 1024)}
# Weights too big for SRAM and for ISRAM beside the arena can still stay on chip: SRAM filled first, the rest in
# ISRAM. Each constant is its own input section (emit.py), so the linker script lists which go where.
SPLIT = "sram+isram"
WEIGHTS_SECTION = "wordrec_weights"  # emit.py names constant i's section WEIGHTS_SECTION.i
ALIGN = 16  # bytes: every constant is aligned(16) (emit.py), so each starts on a 16-byte boundary


def pick_region(choice: str, need: int, regions: dict, key: str, used: dict | None = None,
                extra: tuple[str, ...] = ()) -> str:
    """`choice`, or for auto the first region (in the dict's order) with room for `need` bytes beside the bytes
    `used` already takes there ({region name: bytes}). `extra`: other valid choices, named in the error."""
    used = used or {}
    if choice == "auto":
        return next((name for name, (_, cap) in regions.items() if need + used.get(name, 0) <= cap),
                    list(regions)[-1])
    if choice not in regions:
        raise ConfigError(f"{key}: {choice!r}, expected auto or one of {sorted([*regions, *extra])}")
    return choice


def _padded(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def split_weights(sizes: dict[str, int], first_cap: int) -> tuple[list[str], int]:
    """(sections that go to the first region, bytes left for the second): first fit in emit order, each constant
    16-byte aligned, so the big tensors early in the network do not leave SRAM half empty."""
    first, used, rest = [], 0, 0
    for name, n in sizes.items():
        if used + _padded(n) <= first_cap:
            first.append(name)
            used += _padded(n)
        else:
            rest += _padded(n)
    return first, rest


def place(arena_bytes: int, weights: int | dict[str, int], arena_region: str = "auto",
          weights_region: str = "auto") -> tuple[str, str]:
    """(arena region, weights region): the arena first (it is read and written by every kernel), then the weights
    where they still fit: whole in SRAM, whole in ISRAM beside the arena, split over SRAM and ISRAM (`weights`
    given per section: {section: bytes}), else DDR."""
    arena = pick_region(arena_region, arena_bytes, ARENA_REGIONS, "mcu.arena_region")
    sizes = weights if isinstance(weights, dict) else None
    total = sum(map(_padded, sizes.values())) if sizes is not None else int(weights)
    if weights_region == SPLIT:
        return arena, SPLIT
    region = pick_region(weights_region, total, WEIGHT_REGIONS, "mcu.weights_region", {arena: arena_bytes},
                         extra=(SPLIT,))
    if weights_region == "auto" and region == "ddr" and sizes is not None:
        isram_free = ISRAM_USABLE - (arena_bytes if arena == "isram" else 0)
        if split_weights(sizes, WEIGHT_REGIONS["sram"][1])[1] <= isram_free:
            return arena, SPLIT
    return arena, region


def linker_script(arena_region: str, weights_region: str, sram_sections: list[str] | None = None) -> str:
    """firmware/an547.ld for these regions; with SPLIT, `sram_sections` go to SRAM and every other constant to
    ISRAM."""
    if weights_region == SPLIT:
        first = " ".join(f"KEEP(*({name}))" for name in sram_sections or [])
        regions = ("SRAM", "ISRAM")
    else:
        first = f"KEEP(*({WEIGHTS_SECTION} {WEIGHTS_SECTION}.*))"
        regions = (WEIGHT_REGIONS[weights_region][0],) * 2
    return (firmware_file("an547.ld").read_text()
            .replace("@ARENA_REGION@", ARENA_REGIONS[arena_region][0])
            .replace("@WEIGHTS_INPUTS@", first)
            .replace("@WEIGHTS_REGION@", regions[0]).replace("@WEIGHTS2_REGION@", regions[1]))


def weight_sections(device_dir: Path, build_dir: Path) -> dict[str, int]:
    """{input section: bytes} of the device dir's weights.c, compiled alone, in emit order."""
    gcc = require(GCC, "gcc-arm-none-eabi (+ libnewlib-arm-none-eabi)")
    size = require("arm-none-eabi-size", "binutils-arm-none-eabi")
    obj = Path(build_dir) / "weights_sections.o"
    res = subprocess.run([gcc, *ARCH_FLAGS, "-c", str(Path(device_dir) / "weights.c"), "-o", str(obj)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise DataError(f"{GCC} failed compiling {Path(device_dir) / 'weights.c'}:\n{res.stderr[-2000:]}")
    out = subprocess.run([size, "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    obj.unlink()
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(WEIGHTS_SECTION) and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return dict(sorted(found.items(), key=lambda kv: int(kv[0].rsplit(".", 1)[-1]) if "." in kv[0] else -1))


def build_elf(device_dir: Path, out_elf: Path, opt: str, extra_cflags: list[str], arena_region: str = "dtcm",
              weights_region: str = "sram") -> dict:
    """Compile kernels + weights + runner + start-up + main into one ELF; returns the regions and command."""
    gcc = require(GCC, "gcc-arm-none-eabi (+ libnewlib-arm-none-eabi)")
    device_dir = Path(device_dir)
    header = device_dir / "wordrec_model.h"
    if not header.is_file():
        raise DataError(f"{device_dir}: no wordrec_model.h (expected the compile stage's device/ directory)")
    defs = dict(re.findall(r"#define (WORDREC_\w+) (\d+)", header.read_text()))
    out_elf = Path(out_elf)
    arena_bytes = int(defs["WORDREC_ARENA_BYTES"])
    weights = int(defs["WORDREC_WEIGHT_BYTES"])
    if weights_region == SPLIT or (weights_region == "auto" and weights > WEIGHT_REGIONS["sram"][1]):
        weights = weight_sections(device_dir, out_elf.parent)  # a split needs the size of every constant
    arena_region, weights_region = place(arena_bytes, weights, arena_region, weights_region)
    sram_sections = (split_weights(weights, WEIGHT_REGIONS["sram"][1])[0] if weights_region == SPLIT else None)
    sources = sorted(str(p) for p in device_dir.glob("*.c"))
    sources += [str(firmware_file("startup.c")), str(firmware_file("main.c"))]
    ld = out_elf.with_name("an547.ld")
    ld.write_text(linker_script(arena_region, weights_region, sram_sections))
    cmd = [gcc, *ARCH_FLAGS, opt, "-ffunction-sections", "-fdata-sections", "-I", str(device_dir),
           *extra_cflags, "-T", str(ld), "-o", str(out_elf), *sources, *LINK_FLAGS]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tail = "\n".join(res.stderr.strip().splitlines()[-15:])
        hint = (" (the model does not fit the AN547 memory map: see the region named above; mcu.arena_region / "
                "mcu.weights_region choose larger ones)" if "overflowed by" in res.stderr else "")
        raise DataError(f"{GCC} failed building {out_elf} from {device_dir}{hint}:\n{tail}")
    return {"arena_region": arena_region, "weights_region": weights_region, "cmd": cmd}


def symbol(elf: Path, name: str) -> int:
    nm = require("arm-none-eabi-nm", "binutils-arm-none-eabi")
    for line in subprocess.run([nm, str(elf)], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise DataError(f"{elf}: symbol {name} not found")


def sizes(elf: Path) -> dict:
    """Bytes per section (arm-none-eabi-size -A) folded into flash (code, constants, weights, .data init)
    and RAM (.data, .bss, arena; the stack/heap region is the rest of ISRAM)."""
    size = require("arm-none-eabi-size", "binutils-arm-none-eabi")
    out = subprocess.run([size, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sec = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sec[parts[0]] = int(parts[1])
    flash = sum(sec.get(s, 0) for s in (".text", ".ARM.exidx", ".weights", ".weights2", ".data"))
    ram = sum(sec.get(s, 0) for s in (".data", ".bss", ".arena"))
    return {"flash_bytes": flash, "ram_bytes": ram, "code_bytes": sec.get(".text", 0),
            "weights_section_bytes": sec.get(".weights", 0) + sec.get(".weights2", 0),
            "weights_bytes_by_region": {".weights": sec.get(".weights", 0), ".weights2": sec.get(".weights2", 0)},
            "arena_section_bytes": sec.get(".arena", 0)}
