"""synth: render synthetic English word images into train/val/test LMDBs and check them.

Reads params `synth`; writes OUT/{train,val,test}/ (LMDB), OUT/lines_{train,val,test}/ (multi-word lines with
spaces, when synth.lines sets their sizes), OUT/charset.txt, OUT/fonts.txt (Debian package<TAB>font file),
REPORT (reports/synth.json) and PLOTS/ (montage and label-length PNGs).
"""

import time
from pathlib import Path

from wordrec.data.charset import Charset
from wordrec.errors import ConfigError
from wordrec.pipeline.config import section
from wordrec.data.datacheck import check, length_histogram, montage
from wordrec.io import atomic_dir, write_json
from wordrec.data.lmdb_io import LmdbDataset
from wordrec.pipeline.stage import stage_main
from wordrec.data.synth.fonts import font_packages, load_fonts
from wordrec.data.synth.generate import LINE_SPLITS, Generator, generate_splits
from wordrec.data.synth.text import load_words

def run(cfg, inputs, outputs):
    c = section(cfg, "synth")
    charset = Charset.from_spec(c.charset)
    fonts = load_fonts(c.fonts.dirs, charset.chars, c.fonts.min_fonts)
    words = load_words(c.text.word_lists, c.text.english_words, charset.chars, c.text.max_len)
    gen = Generator(c, fonts, words, charset.chars)

    out = Path(outputs["out"])
    sizes = {"train": c.n_train, "val": c.n_val, "test": c.n_test}
    lines = {split: int(c.lines[key]) for split, key in LINE_SPLITS.items() if int(c.lines[key]) > 0}
    if " " not in charset.chars:
        raise ConfigError(f"synth.lines asks for {sum(lines.values())} line images but synth.charset "
                          f"{c.charset!r} has no space to separate their words (use charset en)")
    sizes.update(lines)
    t0 = time.perf_counter()
    with atomic_dir(out) as tmp:
        generate_splits(gen, sizes, tmp, c.workers)
        charset.to_file(tmp / "charset.txt")
        owner = font_packages(fonts)
        (tmp / "fonts.txt").write_text("".join(f"{owner[f]}\t{f}\n" for f in fonts))
    seconds = time.perf_counter() - t0

    stats = {split: check(LmdbDataset(out / split), charset) for split in sizes}
    plots = Path(outputs["plots"])
    length_histogram(stats, plots / "label_lengths.png")
    montage(LmdbDataset(out / "train"), plots / "montage_train.png")
    if "lines_train" in sizes:
        montage(LmdbDataset(out / "lines_train"), plots / "montage_lines.png", n=24, cols=2, width=400, chars=48)
    metrics = {
        **{split: s["n"] for split, s in stats.items()},
        "fonts": len(fonts),
        "font_packages": len(set(owner.values()) - {"-"}),
        "words": len(words),
        "charset_size": len(charset.chars),
        "charset_coverage_train": stats["train"]["charset_coverage"],
        "label_len_mean_train": stats["train"]["label_len_mean"],
        **({"label_len_mean_lines_train": stats["lines_train"]["label_len_mean"]} if "lines_train" in stats else {}),
        "images_per_second": round(sum(sizes.values()) / seconds, 1),
        "workers": c.workers,
    }
    write_json(outputs["report"], metrics)
    return metrics


if __name__ == "__main__":
    raise SystemExit(
        stage_main(
            run,
            doc=__doc__,
            inputs={},
            outputs={"out": "dataset folder", "report": "metrics JSON", "plots": "PNG folder"},
        )
    )
