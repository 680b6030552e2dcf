"""What a service's name may be: the one rule deploy, channels and the invoke paths share.

Any letters of any script, digits, punctuation and symbols (`crm.get-client`, `ex.żółw`,
`billing:invoice`), at most MAX_LENGTH characters. Refused at deploy, because nothing could
ever name such a service: whitespace (a channel's --service, a URL path segment and a command
line argument all end or change at it), control and other invisible characters (NUL, line
breaks, zero-width spaces: what a log line shows is not the name), and "/" (the invoke paths,
/zato/api/invoke/{service} and /zato/internal/invoke/{service}, end a name at it).
"""

from __future__ import annotations

MAX_LENGTH = 200
RULE = "any letters, digits and symbols but no whitespace, control characters or /"


def why_not(name: object) -> str | None:
    """None if `name` can be a service's name, else why not (a few words)."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > MAX_LENGTH:
        return f"it is longer than {MAX_LENGTH} characters"
    if any(ch.isspace() for ch in name):
        return "it holds whitespace"
    if not name.isprintable():  # control, format (zero-width), surrogate and unassigned characters
        return "it holds a control or invisible character"
    if "/" in name:
        return "it holds a /"
    return None
