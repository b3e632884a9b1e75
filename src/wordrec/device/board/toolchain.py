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


def pick_region(choice: str, need: int, regions: dict, key: str, used: dict | None = None) -> str:
    """`choice`, or for auto the first region (in the dict's order) with room for `need` bytes beside the bytes
    `used` already takes there ({region name: bytes})."""
    used = used or {}
    if choice == "auto":
        return next((name for name, (_, cap) in regions.items() if need + used.get(name, 0) <= cap),
                    list(regions)[-1])
    if choice not in regions:
        raise ConfigError(f"{key}: {choice!r}, expected auto or one of {sorted(regions)}")
    return choice


def place(arena_bytes: int, weight_bytes: int, arena_region: str = "auto", weights_region: str = "auto"
          ) -> tuple[str, str]:
    """(arena region, weights region): the arena first (it is read and written by every kernel), then the weights
    where they still fit."""
    arena = pick_region(arena_region, arena_bytes, ARENA_REGIONS, "mcu.arena_region")
    weights = pick_region(weights_region, weight_bytes, WEIGHT_REGIONS, "mcu.weights_region", {arena: arena_bytes})
    return arena, weights


def build_elf(device_dir: Path, out_elf: Path, opt: str, extra_cflags: list[str], arena_region: str = "dtcm",
              weights_region: str = "sram") -> dict:
    """Compile kernels + weights + runner + start-up + main into one ELF; returns the regions and command."""
    gcc = require(GCC, "gcc-arm-none-eabi (+ libnewlib-arm-none-eabi)")
    device_dir = Path(device_dir)
    header = device_dir / "wordrec_model.h"
    if not header.is_file():
        raise DataError(f"{device_dir}: no wordrec_model.h (expected the compile stage's device/ directory)")
    defs = dict(re.findall(r"#define (WORDREC_\w+) (\d+)", header.read_text()))
    arena_region, weights_region = place(int(defs["WORDREC_ARENA_BYTES"]), int(defs["WORDREC_WEIGHT_BYTES"]),
                                         arena_region, weights_region)
    sources = sorted(str(p) for p in device_dir.glob("*.c"))
    sources += [str(firmware_file("startup.c")), str(firmware_file("main.c"))]
    out_elf = Path(out_elf)
    ld = out_elf.with_name("an547.ld")
    ld.write_text(firmware_file("an547.ld").read_text()
                  .replace("@ARENA_REGION@", ARENA_REGIONS[arena_region][0])
                  .replace("@WEIGHTS_REGION@", WEIGHT_REGIONS[weights_region][0]))
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
    flash = sum(sec.get(s, 0) for s in (".text", ".ARM.exidx", ".weights", ".data"))
    ram = sum(sec.get(s, 0) for s in (".data", ".bss", ".arena"))
    return {"flash_bytes": flash, "ram_bytes": ram, "code_bytes": sec.get(".text", 0),
            "weights_section_bytes": sec.get(".weights", 0), "arena_section_bytes": sec.get(".arena", 0)}
