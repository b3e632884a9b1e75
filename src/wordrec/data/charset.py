"""Character sets and label encoding for CTC recognizers (index 0 is the CTC blank; decoding: wordrec.infer.decode)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from wordrec.errors import ConfigError, DataError

# PaddleOCR's en_dict.txt order (printable ASCII without space) plus space, as PP-OCR's `use_space_char`.
EN_CHARS = "".join(chr(c) for c in range(33, 127)) + " "
NAMED = {
    "alnum_lower": string.digits + string.ascii_lowercase,  # classic scene-text setting: 36 classes
    "alnum": string.digits + string.ascii_lowercase + string.ascii_uppercase,
    "en": EN_CHARS,
}


@dataclass(frozen=True)
class Charset:
    chars: str
    case_insensitive: bool = False

    @classmethod
    def from_spec(cls, spec: str) -> "Charset":
        """`alnum_lower` | `alnum` | `en` | `file:<path>` (one char per line) | a literal string of chars."""
        if spec in NAMED:
            chars = NAMED[spec]
        elif spec.startswith("file:"):
            path = Path(spec[5:])
            if not path.is_file():
                raise ConfigError(f"charset file {path} not found")
            chars = "".join(line.rstrip("\n") or " " for line in path.read_text(encoding="utf-8").splitlines(True))
        else:
            chars = spec
        return cls.from_chars(chars)

    @classmethod
    def from_chars(cls, chars: str) -> "Charset":
        """A literal character list (what meta.json stores), checked."""
        if not chars:
            raise ConfigError("charset: empty")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ConfigError(f"charset: duplicate characters {dup}")
        has_upper = any(c.isupper() for c in chars)
        return cls(chars=chars, case_insensitive=not has_upper and any(c.islower() for c in chars))

    @property
    def num_classes(self) -> int:
        return len(self.chars) + 1  # + CTC blank

    def normalize(self, text: str) -> str:
        """Map a label into this charset's convention (lowercase for case-insensitive sets)."""
        return text.lower() if self.case_insensitive else text

    def missing(self, text: str) -> set[str]:
        return set(self.normalize(text)) - set(self.chars)

    def filter(self, text: str) -> str:
        """Drop characters the charset cannot express (used when a model is trained on a subset)."""
        allowed = set(self.chars)
        return "".join(c for c in self.normalize(text) if c in allowed)

    def encode(self, text: str) -> list[int]:
        index = {c: i + 1 for i, c in enumerate(self.chars)}
        text = self.normalize(text)
        try:
            return [index[c] for c in text]
        except KeyError as e:
            raise DataError(f"label {text!r}: character {e.args[0]!r} is not in the charset") from None

    def decode(self, indices) -> str:
        return "".join(self.chars[i - 1] for i in indices if 0 < i <= len(self.chars))

    def to_file(self, path: str | Path) -> None:
        Path(path).write_text("".join(c + "\n" for c in self.chars), encoding="utf-8")

