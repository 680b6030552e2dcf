"""Correlation IDs: "K" followed by 27 Crockford base32 characters (135 random bits)."""

from __future__ import annotations

import re
import secrets

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CID_LENGTH = 27
CID_RE = re.compile(r"^K[0-9A-HJKMNP-TV-Z]{27}$")


def new_cid() -> str:
    value = secrets.randbits(CID_LENGTH * 5)
    chars = []
    for _ in range(CID_LENGTH):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "K" + "".join(chars)


def is_cid(value: str) -> bool:
    return bool(CID_RE.match(value or ""))
