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
            print(f"  {key:8} {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
