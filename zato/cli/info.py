"""`zato info DIR`: kind, pid, state, ports and cluster of a component."""

from __future__ import annotations

import argparse
import json

from zato.config.component import read_component
from zato.lifecycle import control

KEYS = ("kind", "name", "state", "pid", "cluster", "host", "port", "workers", "url", "user-conf")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show what a component directory is and whether it runs")
    p.add_argument("path", metavar="DIR", help="a component directory")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    data = control.info(read_component(args.path))
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    for item in data.get("members", [data]):
        print_one(item)
    return 0


def print_one(item: dict) -> None:
    print(item["path"])
    for key in KEYS:
        if key in item:
            print(f"  {key:8} {item[key] if item[key] is not None else '-'}")
    details = item.get("details")
    if isinstance(details, dict):
        for key, value in details.items():
            if key in item or key == "path":
                continue  # already printed above
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                print(f"  {key}")  # a table: one line each (the LB's servers)
                for row in value:
                    print(f"    {pairs(row)}")
            elif isinstance(value, dict):
                print(f"  {key:8} {pairs(value)}")
            elif isinstance(value, list):
                print(f"  {key:8} {', '.join(str(v) for v in value) or '-'}")
            else:
                print(f"  {key:8} {value if value is not None else '-'}")


def pairs(d: dict) -> str:
    """`{"pid": 61, "running": true}` as `pid 61, running yes` (before: raw JSON)."""

    def shown(v: object) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, (dict, list)):
            return json.dumps(v, default=str)
        return "-" if v is None else str(v)

    return ", ".join(f"{k} {shown(v)}" for k, v in d.items())
