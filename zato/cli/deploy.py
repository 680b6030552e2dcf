"""`zato deploy DIR module.py`: store a service module in the ODB; every server loads it."""

from __future__ import annotations

import argparse
import os
import re
import sys

from zato.cli.args import seconds, wait_seconds
from zato.cli.conn import report, with_cluster
from zato.common.errors import DeployError
from zato.config.settings import ServerSettings
from zato.coord import loaded
from zato.coord.signing import member_key
from zato.lifecycle.control import cluster_settings
from zato.service.deploy import (
    DeployResult,
    deploy,
    deploy_user_config,
    is_user_config,
    module_name_of,
    user_config_name,
)
from zato.service.store import MODULE_NAME_RE


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        usage="%(prog)s [-h] [--name NAME] [--timeout SECONDS] [--wait SECONDS] DIR FILE",
        help="deploy a service module, or a user-config file, to the whole cluster",
        description="Deploy a Python module of services, or a user-config file (NAME.ini or NAME.conf: "
        "services read it as self.config.NAME), to every server of the cluster.",
    )
    p.add_argument("path", metavar="DIR", help="a server or quickstart directory")
    p.add_argument(
        "module",
        metavar="FILE",
        nargs="?",  # missing: _check_args says which argument was forgotten
        help="MODULE.py defining services, or NAME.ini / NAME.conf (user config)",
    )
    p.add_argument("--name", help="module name (default: the file's name without .py); not empty")
    p.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help="how long the module may take to load (default: [main] deploy_timeout, 10)",
    )
    p.add_argument(
        "--wait",
        type=wait_seconds,
        metavar="SECONDS",
        help="then wait (at most SECONDS, up to 3600) until every worker of every running server"
        " has loaded this version (they load it one at a time, each in its turn), and say how"
        " long that took; exit 1 if one could not load it, or not all did within SECONDS",
    )
    p.set_defaults(func=run)


FILE_ENDINGS = (".py", ".ini", ".conf")


def _check_args(args: argparse.Namespace) -> None:
    """A forgotten FILE is a usage error (exit 2) saying which argument is which: `zato deploy
    hello_api.py` said only 'the following arguments are required: FILE'. An empty --name is
    refused (it was taken as no --name: the module named after its file, unsaid)."""
    if args.module is None:
        if not os.path.isdir(args.path) and (os.path.isfile(args.path) or args.path.endswith(FILE_ENDINGS)):
            args.usage_error(
                f"{args.path} is not a directory: the first argument must be the server's (or"
                f" quickstart's) directory, then the file: zato deploy DIR {args.path}"
            )
        args.usage_error(
            f"FILE is required after {args.path}: the module (MODULE.py) or user-config file (NAME.ini,"
            " NAME.conf) to deploy"
        )
    if not args.module.lower().endswith(FILE_ENDINGS):
        # Taken as a module before: settings.json ({"a": 1} is Python) was deployed as module
        # "settings" with no services, said as a success; the pickup folder takes only these too.
        raise DeployError(
            f"{args.module}: deploy takes a service module (MODULE.py) or a user-config file (NAME.ini,"
            " NAME.conf); rename it to what it is"
        )
    if args.wait is not None and is_user_config(args.module):
        args.usage_error("--wait is for service modules: a user-config file applies as the servers read it")
    if args.name is not None and not args.name.strip():
        raise DeployError(
            f"--name is empty: give the {'user-config file' if is_user_config(args.module) else 'module'} a"
            " name, or leave --name out to name it after its file"
        )


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    settings = cluster_settings(args.path)
    if is_user_config(args.module):
        return _user_config(args, settings)
    timeout = settings.deploy_timeout if args.timeout is None else args.timeout
    try:
        with open(args.module, encoding="utf-8") as f:
            source = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DeployError(f"cannot read {args.module}: {e}") from None
    module = args.name or module_name_of(args.module)
    if not args.name and not MODULE_NAME_RE.match(module):
        suggested = re.sub(r"\W", "_", module)
        suggested = "_" + suggested if suggested[:1].isdigit() else suggested
        raise DeployError(
            f"{args.module}: {module!r} is not a Python identifier, so it cannot name the module; "
            f"give it one with --name, e.g. --name {suggested}"
        )
    result = with_cluster(
        settings,
        lambda odb, client, cluster: deploy(
            odb, client, cluster, module, source, timeout, settings.import_budget
        ),
    )
    report(result)
    return 0 if args.wait is None else _wait_loaded(settings, result, args.wait)


def _wait_loaded(settings: ServerSettings, result: DeployResult, timeout: float) -> int:
    """`zato deploy --wait`: until every live worker loaded the version (zato.coord.loaded)."""
    what = f"module {result.module} version {result.version}"
    waited = with_cluster(
        settings,
        lambda _odb, client, cluster: loaded.wait(
            client,
            cluster,
            member_key(settings.cluster_secret, cluster),
            result.module,
            result.version,
            timeout,
        ),
    )
    if not waited.workers:
        print(
            f"nothing to wait for: no server of cluster {settings.cluster} is running;"
            f" each loads {what} as it starts"
        )
        return 0
    if waited.failed:
        for worker, error in sorted(waited.failed.items()):
            print(
                f"zato: error: {what} is deployed, but worker {worker} could not load it: {error}",
                file=sys.stderr,
            )
        return 1
    if waited.missing:
        print(
            f"zato: error: {what} is deployed, but not loaded within {timeout:g} s by worker(s)"
            f" {', '.join(waited.missing)} (of {len(waited.workers)}; the server log says why)",
            file=sys.stderr,
        )
        return 1
    servers = sorted({w.rpartition(":")[0] for w in waited.workers})
    print(
        f"loaded by every worker in {waited.seconds:.2f} s:"
        f" {len(waited.workers)} worker(s) on {', '.join(servers)}"
    )
    return 0


def _user_config(args: argparse.Namespace, settings: ServerSettings) -> int:
    name = user_config_name(args.module, args.name)
    try:
        with open(args.module, encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DeployError(f"cannot read {args.module}: {e}") from None
    return report(
        with_cluster(
            settings, lambda odb, client, cluster: deploy_user_config(odb, client, cluster, name, text)
        )
    )
