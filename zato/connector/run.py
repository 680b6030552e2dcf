"""Entry point of one connector process: `python -m zato.connector.run SERVER_DIR KIND NAME`.

Started by the connector supervisor on the lease holder with env ZATO_EPOCH (the holder's
fencing epoch), ZATO_SERVER_DIR and the server's settings (zato.connector.process: the
supervisor's, so server.conf is not read again). Forked by the zygote, it gets its definition
from the supervisor in memory (main's `definition`); started as a plain process (or by hand),
it reads it from the ODB itself. Either way no password is ever on a command line or in the
environment. Exit codes: 0 stopped, EXIT_CONFIG (no such definition, bad arguments),
EXIT_DEPENDENCY (Redis or the ODB unreachable at start, address in use), EXIT_LEASE_LOST
(another server holds the lease now).
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import signal
import sys

from zato.common.errors import EXIT_CONFIG, EXIT_DEPENDENCY, ConnectorError, MissingDependency, ZatoError
from zato.common.signing import INVOKE_KEY_ENV, epoch_key
from zato.config import transfer
from zato.config.settings import ServerSettings, load_server_settings
from zato.connector.base import Context
from zato.connector.process import MEMBERS_KEY_ENV, OUTGOING_KEY_ENV, SETTINGS_ENV
from zato.coord.client import check_redis, connect
from zato.coord.signing import member_key, outgoing_key
from zato.lifecycle.entry import Entry, EntryExit

logger = logging.getLogger("zato.connector")

MODULES = {
    "amqp-channel": "zato.connector.amqp_channel",
    "amqp-outgoing": "zato.connector.amqp_outgoing",
    "ibm-mq-channel": "zato.connector.ibmmq_channel",
    "ibm-mq-outgoing": "zato.connector.ibmmq_outgoing",
    "zmq-channel": "zato.connector.zmq_channel",
}


def load_definition(odb_url: str, cluster: str, kind: str, name: str) -> dict:
    """From the ODB: only a connector run without a definition given needs SQLAlchemy."""
    from zato.odb import connectors
    from zato.odb.engine import ODB

    odb = ODB(odb_url)
    try:
        return connectors.load(odb, cluster, kind, name)
    finally:
        odb.dispose()


ENTRY = Entry(
    "zato-connector",
    f"python -m zato.connector.run SERVER_DIR {{{'|'.join(MODULES)}}} NAME",
    "connector",
    usage_exit=EXIT_CONFIG,
)


def main(argv: list[str] | None = None, definition: dict | None = None) -> int:
    """`definition`: given by the zygote (what the supervisor read); None: read from the ODB."""

    def begin(args: list[str], _flags: frozenset[str]) -> int:
        server_dir, kind, name = args
        return start(server_dir, kind, name, definition)

    return ENTRY.main(argv, 3, begin, valid=lambda args: args[1] in MODULES)


def start(server_dir: str, kind: str, name: str, definition: dict | None = None) -> int:
    try:
        epoch = int(os.environ.get("ZATO_EPOCH", ""))
    except ValueError:
        raise EntryExit(EXIT_CONFIG, "ZATO_EPOCH must be set to the holder's epoch") from None
    settings, invoke_key, members_key, out_key = given_settings(server_dir, epoch)
    ENTRY.start(settings, title=f"zato-connector: {kind} {name}")
    label = f"{kind} {name!r}"
    try:
        check_redis(settings.redis)
        if definition is None:
            definition = load_definition(settings.odb_url, settings.cluster, kind, name)
    except ZatoError as e:  # no such definition (ConnectorError) or Redis / the ODB is down
        logger.error("connector %s cannot start: %s", label, e)
        return EXIT_CONFIG if isinstance(e, ConnectorError) else EXIT_DEPENDENCY
    return run(settings, kind, name, epoch, definition, invoke_key, members_key, out_key)


def given_settings(server_dir: str, epoch: int) -> tuple[ServerSettings, bytes, bytes, bytes]:
    """The settings (without the cluster secret: a connector holds keys derived from it only),
    the epoch's invoke key, the members key and the outgoing messages' key. From the
    supervisor's environment (it read server.conf once for the whole server); read from
    SERVER_DIR and derived here when a connector is run by hand. The variables leave this
    process's environment either way."""
    given = os.environ.pop(SETTINGS_ENV, "")
    invoke, members = os.environ.pop(INVOKE_KEY_ENV, ""), os.environ.pop(MEMBERS_KEY_ENV, "")
    out = os.environ.pop(OUTGOING_KEY_ENV, "")
    if given:
        settings = ENTRY.settings(None, functools.partial(transfer.loads, ServerSettings), given)
        try:
            return settings, bytes.fromhex(invoke), bytes.fromhex(members), bytes.fromhex(out)
        except ValueError:
            raise EntryExit(
                EXIT_CONFIG, f"{INVOKE_KEY_ENV}, {MEMBERS_KEY_ENV} and {OUTGOING_KEY_ENV} must be hex"
            ) from None
    settings = ENTRY.settings(None, load_server_settings, server_dir)
    try:
        invoke_key = bytes.fromhex(invoke) if invoke else epoch_key(settings.cluster_secret, epoch)
    except ValueError:
        invoke_key = epoch_key(settings.cluster_secret, epoch)
    members_key = member_key(settings.cluster_secret, settings.cluster)
    out_key = outgoing_key(settings.cluster_secret, settings.cluster)
    return transfer.without_secrets(settings), invoke_key, members_key, out_key


def run(  # noqa: PLR0913
    settings: ServerSettings,
    kind: str,
    name: str,
    epoch: int,
    definition: dict,
    invoke_key: bytes = b"",
    members_key: bytes | None = None,
    out_key: bytes = b"",
) -> int:
    ctx = Context(settings, kind, name, epoch, connect(settings.redis), invoke_key, members_key, out_key)
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
