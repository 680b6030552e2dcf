"""What a server checks of what it shares before it starts: its [gunicorn] settings, the ODB
(and the schema a newer version added to), Redis, and that no live server of the cluster has
its name. Each failure is one clear line (a ZatoError).

A server that `zato start` spawned runs these itself while `zato start` waits at its gate
(zato.lifecycle.entry.pass_gate): it has imported SQLAlchemy and redis anyway, so `zato start`
need not. `zato start --fg` runs them before it becomes the server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from zato.config.settings import RedisSettings, ServerSettings

Say = Callable[[str], None]


def check_server(s: ServerSettings, say: Say) -> None:
    from zato.coord.client import check_redis, through_failover
    from zato.odb.api import check_cluster
    from zato.odb.engine import check_odb, create_schema, make_engine
    from zato.server.app import check_gunicorn_settings, overridden
    from zato.server.fork import start_odb_work

    def odb() -> None:
        engine = make_engine(s.odb_url)
        try:
            check_odb(engine)
            create_schema(engine)  # what a newer version added (columns) to an older ODB
            check_cluster(engine, s.cluster, f"{s.config_file}: [cluster] name")
        finally:
            engine.dispose()

    if s.tls_cert:
        check_tls(s)
    # Not in the arbiter (zato.server.fork.odb_work), and meanwhile [gunicorn] is checked
    checking = start_odb_work(s.odb_url, odb, "checking the ODB")
    try:
        check_gunicorn_settings(s)  # [gunicorn] in server.conf
        for warning in overridden(s):
            say(f"warning: {warning}")
    except BaseException:
        with contextlib.suppress(Exception):  # said first, as before; the check is waited for
            checking.result()
        raise
    checking.result()

    def shared() -> None:
        check_redis(s.redis)
        check_cluster_membership(s, say)
        evicting = eviction_line(s.redis)
        if evicting:
            say(f"warning: {evicting}")

    # Behind Sentinel, a failover under way is waited for (it names no master, or one that does
    # not answer yet) rather than failing the start.
    through_failover(s.redis, shared, say)


def check_tls(s: ServerSettings) -> None:
    """[tls] cert: readable, its key matching, valid now, and, when [tls] ca_file is set, trusted
    by it for the address this server announces (what the LB and the other servers verify it
    with). ConfigError, one line, otherwise."""
    from zato.common.tls import check_bundle, check_signed_by

    check_bundle(s.tls_cert)
    if s.tls_ca_file:
        host = s.announced_host
        check_signed_by(s.tls_cert, s.tls_ca_file, "" if host in ("0.0.0.0", "::", "") else host)


def check_cluster_membership(s: ServerSettings, say: Say) -> None:
    """Refuse a server whose name a live server of the cluster already has; warn in one line
    when Redis lets anyone in (membership and queues could be forged or read)."""
    from zato.coord import membership
    from zato.coord.client import accepts_anonymous, connect, describe
    from zato.coord.signing import member_key

    client = connect(s.redis)
    try:
        key = member_key(s.cluster_secret, s.cluster)
        membership.check_name_free(client, s.cluster, key, s.name, s.address)
        # started, it would get no traffic and `zato cluster status` would call it gone
        membership.refuse_foreign_secret(
            client,
            s.cluster,
            key,
            s.name,
            s.config_file,
            "the load balancer and the other servers would ignore this server",
        )
    finally:
        client.close()
    if accepts_anonymous(s.redis):
        say(anonymous_warning(s.redis, describe(s.redis)))


def anonymous_warning(redis: RedisSettings, where: str) -> str:
    """The one line `zato start` says of a Redis that takes commands without a password. With a
    user or password in [kvdb] url, that is Redis's default user, not the URL's (before, the line
    read as if the configured password were not used)."""
    from redis.connection import parse_url

    given = parse_url(redis.url)
    if given.get("username") or given.get("password"):
        return (
            f"warning: Redis at {where} also takes commands without a password, as its default user:"
            " anyone who reaches it can read and change every cluster's keys; turn that user off"
            " (redis-cli ACL SETUSER default off) or give it a password (docs/redis-acl.md)"
        )
    return f"warning: Redis at {where} takes commands without a password (docs/redis-acl.md)"


def eviction_line(redis: RedisSettings) -> str:
    """The one line saying Redis may evict the cluster's keys, or that its policy could not be
    checked ("" when it keeps every key): zato.coord.eviction. Never a failure: Redis failing
    now is said as a policy not checked."""
    from zato.common.errors import CoordError
    from zato.coord import eviction
    from zato.coord.client import connect, describe

    client = connect(redis)
    try:
        found = eviction.read(client)
    except CoordError as e:
        found = eviction.Eviction(unread=str(e))
    finally:
        client.close()
    return eviction.said(found, describe(redis))
