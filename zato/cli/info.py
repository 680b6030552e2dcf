"""`zato info DIR`: kind, pid, state, ports and cluster of a component."""

from __future__ import annotations

import argparse
import json

from zato.config.component import read_component
from zato.lifecycle import control

# user_config: the labels of Zato's [user_config] stanza (before, only `--json` showed them).
KEYS = (
    "kind",
    "name",
    "state",
    "problem",
    "pid",
    "cluster",
    "host",
    "port",
    "workers",
    "url",
    "user-conf",
    "user_config",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="show what a component directory is and whether it runs",
        description="Show what DIR holds (a server, load balancer, dashboard or quickstart), its"
        " cluster, address, pid and whether it runs, and what it says of itself while it runs (a"
        " load balancer: its servers and their states). Exit 1 when a quickstart member could not"
        " be described. For the whole cluster as Redis sees it: zato cluster status DIR.",
    )
    p.add_argument("path", metavar="DIR", help="a component directory")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print JSON")
    shown.add_argument(
        "--urls", action="store_true", help="print the URL to open of each component (what `make run` prints)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.urls:
        found = control.urls(read_component(args.path))
        width = max((len(one.what) for one in found), default=0)
        for one in found:
            print(f"  {one.what:{width}}  {one.url}   ({one.note})")
        return int(any(one.problem for one in found))  # as without --urls: the others are shown
    data = control.info(read_component(args.path))
    # A quickstart member that could not be described has its problem in its row; the others
    # are shown all the same, and the exit status says that one was not.
    failed = int(any("problem" in item for item in data.get("members", [])))
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return failed
    blocks = [rows_of(item) for item in data.get("members", [data])]
    # One column for the values of every member (before: keys were padded to 8 characters, so
    # user-conf, alive_url, stats_username pushed their values out of line).
    width = max((len(key) for rows in blocks for key, _ in rows if key), default=0)
    for rows in blocks:
        for key, value in rows:
            print(f"  {key:{width}} {value}".rstrip() if key else value)
    return failed


def rows_of(item: dict) -> list[tuple[str, str]]:
    """(key, value) lines of one component; ("", text) for a line printed as it is."""
    rows = [("", item["path"])]
    for key in KEYS:
        if key in item:
            rows.append((key, str(item[key]) if item[key] is not None else "-"))
    details = item.get("details")
    if isinstance(details, dict):
        for key, value in details.items():
            if key in item or key == "path":
                continue  # already printed above
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                rows.append((key, ""))  # a table: one line each (the LB's servers)
                rows.extend(("", f"    {pairs(row)}") for row in value)
            elif isinstance(value, dict):
                rows.append((key, pairs(value)))
            elif isinstance(value, list):
                rows.append((key, ", ".join(str(v) for v in value) or "-"))
            else:
                rows.append((key, str(value) if value is not None else "-"))
    return rows


def pairs(d: dict) -> str:
    """`{"pid": 61, "running": true}` as `pid 61, running yes` (before: raw JSON)."""

    def shown(v: object) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, (dict, list)):
            return json.dumps(v, default=str)
        return "-" if v is None else str(v)

    return ", ".join(f"{k} {shown(v)}" for k, v in d.items())
