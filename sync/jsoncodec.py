"""How JSON columns are written and read: orjson, with the standard library where orjson would differ.

A 500-op push writes three JSON values per visit and a pull of 500 records reads as many; the standard
library's encoder and decoder were a tenth of a push and a quarter of a pull. orjson does the same work
several times faster, but differs from the standard library in two places that would lose data:
integers past 64 bits (it cannot write them, and reads them as floats). A client may put such a number in
a free-form field (``observations``), and the standard library parsed it exactly from the request, so
those values keep the standard library both ways.
"""
from __future__ import annotations

import json
import re
from typing import Any

import orjson

# 20 digits in a row can only be (part of) an integer past 64 bits or text; either way the exact path reads it.
_LONG_DIGIT_RUN = re.compile(r"\d{20}")


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


def loads(text: str | bytes) -> Any:
    if isinstance(text, (bytes, bytearray)):
        text = text.decode()
    if _LONG_DIGIT_RUN.search(text):
        return json.loads(text)
    return orjson.loads(text)


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer past 64 bits, or a type orjson does not know
        return json.dumps(value, ensure_ascii=False).encode()
