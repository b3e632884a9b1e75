"""Font discovery: every TrueType/OpenType file under the configured folders that really draws the glyphs.

A font's cmap is not enough: symbol and dingbat fonts map Latin code points to pictures, and some fonts map
everything to one empty box. So each candidate also renders a few confusable glyphs and must draw each one
visibly and differently.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTCollection, TTFont
from PIL import Image, ImageDraw, ImageFont

from wordrec.errors import DataError

EXCLUDE = re.compile(r"symbol|dingbat|wingding|emoji|math|icon|awesome|opensym|d050000l|music|ornament", re.I)
PROBE = "aeo0O1lI8B"  # confusable glyphs: all must be drawn and pairwise different


def _cmap_chars(path: Path) -> set[str]:
    try:
        if path.suffix.lower() == ".ttc":
            fonts = TTCollection(str(path), lazy=True).fonts[:1]
        else:
            fonts = [TTFont(str(path), lazy=True, fontNumber=0)]
        cmap = fonts[0].getBestCmap() or {}
    except Exception:
        return set()
    return {chr(c) for c in cmap}


def _draws_distinct_glyphs(path: Path) -> bool:
    try:
        font = ImageFont.truetype(str(path), 32)
    except OSError:
        return False
    seen = set()
    for ch in PROBE:
        img = Image.new("L", (48, 48))
        ImageDraw.Draw(img).text((8, 4), ch, font=font, fill=255)
        a = np.asarray(img) > 127
        if a.sum() < 8:
            return False
        seen.add(a.tobytes())
    return len(seen) == len(PROBE)


@lru_cache(maxsize=8)
def find_fonts(dirs: tuple[str, ...], required: str) -> tuple[str, ...]:
    """Sorted paths of usable fonts covering every char in `required` (space excluded)."""
    need = set(required) - {" "}
    found = []
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() not in (".ttf", ".otf", ".ttc") or EXCLUDE.search(p.name):
                continue
            if need <= _cmap_chars(p) and _draws_distinct_glyphs(p):
                found.append(str(p))
    return tuple(sorted(set(found)))


def load_fonts(dirs, required: str, min_fonts: int = 1) -> tuple[str, ...]:
    fonts = find_fonts(tuple(str(d) for d in dirs), required)
    if len(fonts) < min_fonts:
        raise DataError(
            f"synth.fonts.dirs={list(dirs)}: found {len(fonts)} usable fonts covering the charset, "
            f"expected at least {min_fonts} (install Debian font packages: scripts/setup.sh)"
        )
    return fonts


def font_packages(fonts) -> dict[str, str]:
    """Font path -> Debian package that installed it ('-' when dpkg does not know it, e.g. a user's folder)."""
    import shutil
    import subprocess

    owner = {f: "-" for f in fonts}
    if fonts and shutil.which("dpkg-query"):
        out = subprocess.run(["dpkg-query", "-S", *fonts], capture_output=True, text=True).stdout
        for line in out.splitlines():
            pkg, _, path = line.partition(": ")
            if path in owner:
                owner[path] = pkg.split(":")[0]
    return owner
