"""Bytes to text: UTF-8 first, the detected encoding only when the bytes are not UTF-8."""

from __future__ import annotations

import logging

from qa.errors import DocumentError

log = logging.getLogger(__name__)

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
PREFERRED_WHEN_TIED = ("cp1252", "latin_1", "iso8859_15")


def decode(data: bytes, doc_id: str) -> str:
    """The file's text with newlines normalised to \\n.

    Most files are UTF-8; guessing first would misread some of them, so detection (charset-normalizer)
    runs only when UTF-8 fails, and a file it cannot place is refused with the fix."""
    if data.startswith(_UTF16_BOMS):
        text = _decode_utf16(data, doc_id)
    else:
        if b"\x00" in data:
            raise DocumentError(f"{doc_id}: looks like a binary file, not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            text = _detect(data, doc_id, exc.start)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_utf16(data: bytes, doc_id: str) -> str:
    try:
        text = data.decode("utf-16")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{doc_id}: looks like a binary file, not text (a UTF-16 mark, then byte "
                            f"{exc.start} is not UTF-16)") from exc
    if "\x00" in text:
        raise DocumentError(f"{doc_id}: looks like a binary file, not text")
    return text


def _detect(data: bytes, doc_id: str, bad_byte: int) -> str:
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is not None:
        # Western European text fits cp1250, cp1252 and cp1257 equally well by the detector's
        # measures; cp1252 (what browsers read "latin-1" as) is by far the likeliest of the tied ones.
        tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
        best = next((m for m in tied if m.encoding in PREFERRED_WHEN_TIED), best)
    if best is None:
        raise DocumentError(
            f"{doc_id}: not UTF-8 text (byte {bad_byte}) and no other encoding fits: save it as UTF-8"
        )
    log.info("%s: not UTF-8 (byte %d); read as %s", doc_id, bad_byte, best.encoding)
    return str(best)
