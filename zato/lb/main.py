"""`python -m zato.lb.main LB_DIR`: the load-balancer controller process.

Writes LB_DIR/pidfile, logs to LB_DIR/logs/lb.log, runs HAProxy as its child and removes
the pidfile on exit. SIGTERM stops it (and HAProxy); SIGHUP re-reads lb.conf and reloads
HAProxy with it (a bad value is logged and the running config kept). At start, a bad
lb.conf value is reported in one line on stderr and the process exits with EXIT_CONFIG
before HAProxy is touched.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import signal
import sys

from zato.common.errors import EXIT_CONFIG, EXIT_DEPENDENCY, EXIT_OK, ComponentError, ConfigError, ZatoError
from zato.common.pidfile import Owner, read_pidfile, remove_pidfile, write_pidfile
from zato.config.component import LOAD_BALANCER, read_component
from zato.config.settings import MIN_PASSWORD, LBSettings, load_lb_settings
from zato.lb.edge import fit_maxconn
from zato.lb.haproxy import find_binary
from zato.lifecycle.entry import Entry, EntryExit, pass_gate

logger = logging.getLogger("zato.lb")


def check_settings(settings: LBSettings) -> str:
    """Checks the loader cannot make; returns the haproxy binary. ConfigError otherwise."""
    if ":" in settings.stats_username or not settings.stats_username:
        raise ConfigError(f"{settings.config_file}: [stats] username: must be non-empty and without ':'")
    if len(settings.stats_password) < MIN_PASSWORD:  # the stats page is open to the LB's port
        what = (
            "must not be empty"
            if not settings.stats_password
            else f"is shorter than {MIN_PASSWORD} characters"
        )
        raise ConfigError(f"{settings.config_file}: [stats] password: {what}; set a long random value")
    if settings.check_fall * settings.check_inter_ms > 60000:
        raise ConfigError(f"{settings.config_file}: [haproxy] check_fall x check_inter_ms exceeds 60 s")
    if settings.edge.tls_cert:
        from zato.common.tls import check_bundle

        check_bundle(settings.edge.tls_cert)
    return find_binary(settings)


def load(lb_dir: str) -> tuple[LBSettings, str]:
    component = read_component(lb_dir)
    if component.kind != LOAD_BALANCER:
        raise ComponentError(f"{component.path}: a {component.kind} directory, not a load balancer")
    settings = load_lb_settings(component.path)
    edge, warning = fit_maxconn(settings.edge, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    if warning:
        logger.warning("%s", warning)
    return dataclasses.replace(settings, edge=edge), check_settings(settings)


ENTRY = Entry("zato-lb", "python -m zato.lb.main LB_DIR", "lb")


def main(argv: list[str] | None = None) -> int:
    return ENTRY.main(argv, 1, lambda args, _flags: start(args[0]))


def start(lb_dir: str) -> int:
    settings, binary = ENTRY.settings(None, load, lb_dir)
    ENTRY.start(settings)
    import zato.lb.controller  # noqa: F401 - imported while `zato start` waits
    from zato.coord.client import through_failover

    if not pass_gate(lambda say: through_failover(settings.redis, lambda: check_shared(settings), say)):
        return EXIT_DEPENDENCY
    status = read_pidfile(settings.pidfile, Owner("zato.lb.main", settings.path))  # a reused pid is not us
    if status.alive:
        logger.error("the load balancer is already running (pid %s)", status.pid)
        raise EntryExit(EXIT_CONFIG, f"already running (pid {status.pid})")
    write_pidfile(settings.pidfile)
    try:
        return run(settings, binary)
    finally:
        remove_pidfile(settings.pidfile)


def check_shared(settings: LBSettings) -> None:
    """Redis answers, and the live servers sign their member entries with this LB's cluster
    secret (with another one, it would ignore every server and answer 503 to all)."""
    from zato.coord import membership
    from zato.coord.client import check_redis, connect
    from zato.coord.signing import member_key

    check_redis(settings.redis)
    client = connect(settings.redis)
    try:
        key = member_key(settings.cluster_secret, settings.cluster)
        membership.refuse_foreign_secret(
            client,
            settings.cluster,
            key,
            "",
            settings.config_file,
            "the load balancer would send them no traffic",
        )
    finally:
        client.close()


def run(settings: LBSettings, binary: str) -> int:
    from zato.lb.controller import Controller

    # The one re-read of lb.conf: SIGHUP asks for it (the controller keeps the running config
    # if the new one is bad); the start-up settings come from main() above.
    controller = Controller(settings, binary, loader=lambda: load(settings.path))
    signal.signal(signal.SIGTERM, lambda *_: controller.request_stop())
    signal.signal(signal.SIGINT, lambda *_: controller.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: controller.request_reload())
    logger.info(
        "load balancer for cluster %s starting on %s:%s", settings.cluster, settings.host, settings.port
    )
    try:
        controller.run()
    except ZatoError as e:
        logger.error("load balancer stopped: %s", e)
        ENTRY.error(e)
        return EXIT_DEPENDENCY
    except Exception:
        logger.exception("load balancer crashed")
        return 1
    logger.info("load balancer stopped")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
