"""Entry point of one connector process: `python -m zato.connector.run SERVER_DIR KIND NAME`.

Started by the connector supervisor on the lease holder with env ZATO_EPOCH (the holder's
fencing epoch) and ZATO_SERVER_DIR. The connector reads its definition from the ODB itself,
so no password is ever on a command line. Exit codes: 0 stopped, EXIT_CONFIG (no such
definition, bad arguments), EXIT_DEPENDENCY (Redis or the ODB unreachable at start, address
in use), EXIT_LEASE_LOST (another server holds the lease now).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import signal
import sys

from zato.common.errors import EXIT_CONFIG, EXIT_DEPENDENCY, ConnectorError, MissingDependency, ZatoError
from zato.common.log import setup_component_logging
from zato.common.signing import INVOKE_KEY_ENV, epoch_key
from zato.config.settings import load_server_settings
from zato.connector.base import Context
from zato.coord.client import check_redis, connect
from zato.coord.signing import member_key
from zato.odb import connectors
from zato.odb.engine import ODB

logger = logging.getLogger("zato.connector")

MODULES = {
    "amqp-channel": "zato.connector.amqp_channel",
    "amqp-outgoing": "zato.connector.amqp_outgoing",
    "ibm-mq-channel": "zato.connector.ibmmq_channel",
    "ibm-mq-outgoing": "zato.connector.ibmmq_outgoing",
    "zmq-channel": "zato.connector.zmq_channel",
}


def set_title(kind: str, name: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(f"zato-connector: {kind} {name}")
    except ImportError:  # pragma: no cover - setproctitle is a dependency
        pass


def load_definition(odb_url: str, cluster: str, kind: str, name: str) -> dict:
    odb = ODB(odb_url)
    try:
        return connectors.load(odb, cluster, kind, name)
    finally:
        odb.dispose()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[1] not in MODULES:
        print(f"usage: python -m zato.connector.run SERVER_DIR {{{'|'.join(MODULES)}}} NAME", file=sys.stderr)
        return EXIT_CONFIG
    server_dir, kind, name = argv
    try:
        epoch = int(os.environ.get("ZATO_EPOCH", ""))
    except ValueError:
        print("zato-connector: error: ZATO_EPOCH must be set to the holder's epoch", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = load_server_settings(server_dir)
    except ZatoError as e:
        print(f"zato-connector: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    invoke_key = _invoke_key(settings, epoch)
    members_key = member_key(settings.cluster_secret, settings.cluster)  # before the secret goes
    settings = dataclasses.replace(settings, cluster_secret="")  # a connector holds its epoch's key only
    setup_component_logging(settings, "connector")
    set_title(kind, name)
    label = f"{kind} {name!r}"
    try:
        check_redis(settings.redis)
        definition = load_definition(settings.odb_url, settings.cluster, kind, name)
    except ZatoError as e:  # no such definition (ConnectorError) or Redis / the ODB is down
        logger.error("connector %s cannot start: %s", label, e)
        return EXIT_CONFIG if isinstance(e, ConnectorError) else EXIT_DEPENDENCY
    return run(settings, kind, name, epoch, definition, invoke_key, members_key)


def _invoke_key(settings, epoch: int) -> bytes:  # noqa: ANN001 - ServerSettings
    """The key the supervisor derived for this epoch; derived here when run by hand."""
    given = os.environ.pop(INVOKE_KEY_ENV, "")
    try:
        return bytes.fromhex(given) if given else epoch_key(settings.cluster_secret, epoch)
    except ValueError:
        return epoch_key(settings.cluster_secret, epoch)


def run(  # noqa: PLR0913
    settings,  # noqa: ANN001 - ServerSettings
    kind: str,
    name: str,
    epoch: int,
    definition: dict,
    invoke_key: bytes = b"",
    members_key: bytes | None = None,
) -> int:
    ctx = Context(settings, kind, name, epoch, connect(settings.redis), invoke_key, members_key)
    signal.signal(signal.SIGTERM, ctx.request_stop)
    signal.signal(signal.SIGINT, ctx.request_stop)
    ctx.stats.start()
    logger.info("connector %s started (pid %d, epoch %d)", ctx.label, os.getpid(), epoch)
    try:
        code = importlib.import_module(MODULES[kind]).run(ctx, definition)
    except MissingDependency as e:  # FATAL until installed and the definition changes
        ctx.stats.error(str(e))
        ctx.stats.state("fatal")
        logger.error("connector %s cannot start: %s", ctx.label, e)
        print(f"zato-connector: error: {e}", file=sys.stderr)
        code = EXIT_CONFIG
    except Exception as e:
        ctx.stats.error(f"crashed: {type(e).__name__}: {e}")
        logger.exception("connector %s crashed", ctx.label)
        raise
    finally:
        ctx.stats.close()
    logger.info("connector %s stopped (exit code %d)", ctx.label, code)
    return code


if __name__ == "__main__":
    sys.exit(main())
