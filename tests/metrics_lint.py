"""Checks of a Prometheus text exposition: it parses with prometheus_client's own parser and
follows Prometheus' naming conventions (prometheus.io/docs/practices/naming, and the rules of
promtool's `check metrics`), plus no label that would take a value per request.

`problems(text)` lists what is wrong, one line each (empty: nothing); `documented(path)` reads
the metric tables of docs/metrics.md as {name: type}."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

NAME = re.compile(r"^[a-z_][a-z0-9_]*$")  # no colons (recording rules') and no camelCase
LABEL = re.compile(r"^[a-z_][a-z0-9_]*$")
# Units promtool's check calls non-base (seconds and bytes are the base ones) or abbreviated
NON_BASE_UNITS = (
    "milliseconds", "microseconds", "nanoseconds", "minutes", "hours", "days", "weeks",
    "kilobytes", "megabytes", "gigabytes", "terabytes", "bits", "percent", "celsius",
)  # fmt: skip
ABBREVIATED = ("sec", "secs", "ms", "us", "ns", "min", "mins", "kb", "mb", "gb", "pct")
TYPES_IN_NAME = ("counter", "gauge", "histogram", "summary", "untyped")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count", "_created"), "summary": ("_sum", "_count", "_created")}
# Labels whose values would come one per request, message or client
PER_REQUEST_LABELS = {
    "path", "url", "uri", "url_path", "target", "query", "cid", "message_id", "msg_id",
    "correlation_id", "request_id", "trace_id", "client", "remote", "remote_addr", "ip", "user_agent",
}  # fmt: skip


def problems(text: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """What breaks the conventions in `text` (`allowed`: family names left unchecked)."""
    found = _declarations(text, allowed)
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as e:
        return [*found, f"prometheus_client cannot parse it: {e}"]
    series: set[tuple] = set()
    for family in families:
        if family.name in allowed:
            continue
        found += _family(family)
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in series:
                found.append(f"{s.name}{dict(s.labels)}: the same series twice")
            series.add(key)
    return found


def _declarations(text: str, allowed: frozenset[str]) -> list[str]:
    """HELP or TYPE lines given twice for one name; a counter declared without _total (the
    parser adds _total to such a counter's samples, so only its TYPE line shows it)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE") and parts[2] not in allowed:
            if (parts[1], parts[2]) in seen:
                out.append(f"{parts[2]}: {parts[1]} given twice")
            seen.add((parts[1], parts[2]))
            if parts[1] == "TYPE" and parts[3:] == ["counter"] and not parts[2].endswith("_total"):
                out.append(f"{parts[2]}: a counter's name ends in _total")
    return out


def _family(family) -> list[str]:  # noqa: ANN001 - prometheus_client's Metric
    name, kind = family.name, family.type
    out = []
    if not family.documentation:
        out.append(f"{name}: no HELP")
    if not NAME.match(name):
        out.append(f"{name}: not a snake_case name of [a-z0-9_]")
    words = name.split("_")
    out += [f"{name}: {w!r} is not a base unit (seconds, bytes)" for w in words if w in NON_BASE_UNITS]
    out += [f"{name}: {w!r} is an abbreviated unit" for w in words if w in ABBREVIATED]
    out += [f"{name}: the type {w!r} in the name" for w in words if w in TYPES_IN_NAME]
    for s in family.samples:
        if kind != "counter" and s.name.endswith("_total"):
            out.append(f"{s.name}: _total on a {kind} (counters only)")
        if kind not in SUFFIXES and s.name not in (name, f"{name}_total", f"{name}_created"):
            out.append(f"{s.name}: a {kind}'s sample named unlike its family {name}")
        if (
            kind in SUFFIXES
            and not s.name.endswith(SUFFIXES[kind])
            and not (kind == "summary" and s.name == name)
        ):
            out.append(f"{s.name}: not one of a {kind}'s samples")
        for label in s.labels:
            if not LABEL.match(label) or label.startswith("__"):
                out.append(f"{s.name}: label {label!r} is not a snake_case name")
            if label == "le" and kind != "histogram" or label == "quantile" and kind != "summary":
                out.append(f"{s.name}: label {label!r} is reserved for a histogram or summary")
            if label in PER_REQUEST_LABELS:
                out.append(f"{s.name}: label {label!r} takes a value per request")
    return sorted(set(out), key=out.index)


def documented(path: str) -> dict[str, tuple[str, str]]:
    """{metric: (type, scope)} from the tables of docs/metrics.md: rows "| `name` | type | ..."
    under a heading "## Per-server metrics" (scope "server") or "## Cluster metrics" ("cluster")."""
    row = re.compile(r"^\| `([a-z_]+)` \| (counter|gauge|histogram|summary) \|")
    out, scope = {}, ""
    with open(path) as f:
        for line in f:
            if line.startswith("## "):
                scope = (
                    "server"
                    if line.startswith("## Per-server")
                    else "cluster"
                    if "## Cluster" in line
                    else ""
                )
            m = row.match(line)
            if m and scope:
                out[m[1]] = (m[2], scope)
    return out


def exposed_name(family) -> str:  # noqa: ANN001 - prometheus_client's Metric
    """The name a family is documented and queried by (the parser drops a counter's _total)."""
    return family.name + "_total" if family.type == "counter" else family.name


def documented_labels(path: str) -> dict[str, dict[str, tuple[str, ...] | None]]:
    """{metric: {label: its documented values, or None where the docs list none}} from the
    labels column of docs/metrics.md's tables: "`kind` = a, b", "`list` (a, b)", "`server`"."""
    row = re.compile(r"^\| `([a-z_]+)` \| (?:counter|gauge|histogram|summary) \|\s*([^|]*?)\s*\|")
    label = re.compile(r"`([a-z_]+)`\s*(?:=\s*([a-z0-9, -]+?)\s*(?=,\s*`|$)|\(([^)]*)\))?")
    out = {}
    with open(path) as f:
        for line in f:
            m = row.match(line)
            if m:
                out[m[1]] = {
                    name: tuple(v.strip() for v in (listed or paren).split(","))
                    if (listed or paren)
                    else None
                    for name, listed, paren in label.findall(m[2].strip())
                }
    return out
