"""`zato deploy DIR module.py`: store a service module in the ODB; every server loads it."""

from __future__ import annotations

import argparse

from zato.common.control import cluster_settings
from zato.common.errors import DeployError
from zato.coord.client import connect
from zato.odb.engine import ODB
from zato.service.deploy import deploy, module_name_of


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="deploy a service module to the whole cluster")
    p.add_argument("path", metavar="DIR", help="a server or quickstart directory")
    p.add_argument("module", metavar="MODULE.py", help="the Python file defining the services")
    p.add_argument("--name", help="module name (default: the file's name without .py)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = cluster_settings(args.path)
    try:
        with open(args.module, encoding="utf-8") as f:
            source = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DeployError(f"cannot read {args.module}: {e}") from None
    odb, client = ODB(settings.odb_url), connect(settings.redis)
    try:
        result = deploy(odb, client, settings.cluster, args.name or module_name_of(args.module), source)
    finally:
        odb.dispose()
        client.close()
    print(result.describe())
    return 0
