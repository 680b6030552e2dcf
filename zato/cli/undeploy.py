"""`zato undeploy DIR MODULE`: remove a deployed service module; every server drops its services."""

from __future__ import annotations

import argparse

from zato.cli.conn import report, with_cluster
from zato.lifecycle.control import cluster_settings
from zato.service.deploy import (
    is_user_config,
    module_name_of,
    undeploy,
    undeploy_user_config,
    user_config_name,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "undeploy",
        help="remove a deployed service module, or a user-config file, from the whole cluster",
        description="Remove a deployed module and its services from every server of the cluster. "
        "Channels that invoke its services are kept, and a warning names them: they fail "
        "(an HTTP channel answers 404) until a module defining those services is deployed "
        "again. A file in a server's pickup/processed folder is left where it is.",
    )
    p.add_argument("path", metavar="DIR", help="a server or quickstart directory")
    p.add_argument(
        "module",
        metavar="MODULE",
        help="the module's name, or the .py file it was deployed from; "
        "or NAME.ini / NAME.conf, a deployed user-config file",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if is_user_config(args.module):
        name = user_config_name(args.module)
        return report(
            with_cluster(
                cluster_settings(args.path),
                lambda odb, client, cluster: undeploy_user_config(odb, client, cluster, name),
            )
        )
    module = module_name_of(args.module) if args.module.endswith(".py") else args.module
    return report(
        with_cluster(
            cluster_settings(args.path), lambda odb, client, cluster: undeploy(odb, client, cluster, module)
        )
    )
