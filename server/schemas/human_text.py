"""The one validator for text people write and other people read: names,
bios, titles, descriptions, messages, comments.

``SingleLine`` and ``MultiLine`` are ``Annotated[str, ...]`` types for
pydantic models; ``clean_text`` is the same check for code that validates
by hand (chat bodies). A valid text:

- is NFC-normalised (what is stored is what is compared and searched);
- has no control characters (C0, DEL, C1: NUL, ESC of terminal escape
  sequences...), except newline and tab in multi-line text, where ``\\r\\n``
  and ``\\r`` become ``\\n``; no lone surrogates, no line/paragraph
  separators in single-line text;
- has no bidirectional controls (U+202A-202E, U+2066-2069, U+200E/200F,
  U+061C), which make text display differently from what it says;
- is not blank once invisible characters (format characters such as
  zero-width spaces and joiners, word joiner, BOM; Hangul fillers...) are removed, unless it is empty
  and the field allows empty.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

BIDI_CONTROLS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)
# Characters that draw nothing: a name made only of these looks blank.
INVISIBLE = frozenset(
    ["\u00ad", "\u034f", "\u115f", "\u1160", "\u17b4", "\u17b5", "\u180e", "\u3164",
     "\ufeff", "\uffa0"]
    + [chr(c) for c in range(0x200B, 0x200E)]  # zero-width space, non-joiner, joiner
    + [chr(c) for c in range(0x2060, 0x2065)]  # word joiner, invisible operators
)
MULTI_LINE_CONTROLS = frozenset({"\n", "\t"})
LINE_SEPARATORS = frozenset({"\u2028", "\u2029"})


class TextError(ValueError):
    """Why a text was refused (its message is shown to the client)."""


def clean_text(value: str, *, multiline: bool) -> str:
    """The stored form of ``value`` (NFC; ``\\n`` line breaks), or
    ``TextError``. Callers strip surrounding whitespace themselves (pydantic
    models do, with ``str_strip_whitespace``)."""
    text = unicodedata.normalize("NFC", value)
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        for sep in LINE_SEPARATORS:
            text = text.replace(sep, "\n")
    allowed = MULTI_LINE_CONTROLS if multiline else frozenset()
    visible = False
    for ch in text:
        if ch in BIDI_CONTROLS:
            raise TextError("must not contain bidirectional control characters")
        category = unicodedata.category(ch)
        if (category in ("Cc", "Cs") and ch not in allowed) or ch in LINE_SEPARATORS:
            raise TextError("must not contain control characters"
                            + ("" if multiline else " or line breaks"))
        if not (visible or ch in INVISIBLE or category == "Cf" or ch.isspace()):
            visible = True
    if text and not visible:
        raise TextError("must not be blank")
    return text


def _single_line(value: str) -> str:
    return clean_text(value, multiline=False)


def _multi_line(value: str) -> str:
    return clean_text(value, multiline=True)


SingleLine = Annotated[str, AfterValidator(_single_line)]
MultiLine = Annotated[str, AfterValidator(_multi_line)]
