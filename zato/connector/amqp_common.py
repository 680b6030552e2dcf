"""AMQP pieces shared by the channel and outgoing connectors: connection parameters from a
definition, and connecting with back-off (the broker may be down; we say so and retry). A
login or virtual host the broker refuses is tried again less and less often and said once
with what to do (zato.connector.refusals), as IBM MQ's refusals are."""

from __future__ import annotations

import builtins
import contextlib
import errno
import logging
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator

import pika
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from zato.common import jsonenc
from zato.common.errors import EXIT_OK, ConnectorError
from zato.common.log import (
    pika_at_debug,  # noqa: F401 - the connectors call it from here
    printable,
)
from zato.connector.base import Context, RetryPolicy, say_reconnecting
from zato.connector.refusals import REFUSED, Refusals, say_refused
from zato.coord.queues import AMQP_PROPERTIES, MAX_HEADER_DEPTH
from zato.odb.limits import AMQP_HANDSHAKE_TIMEOUT, MAX_AMQP_HEARTBEAT

logger = logging.getLogger("zato.connector.amqp")

# Everything pika raises when the broker or the network fails (not our bugs). A connection that
# gets no AMQP handshake in time (stack_timeout: the broker is hung, or something else listens
# on its port) ends in AMQPConnectorStackTimeout, an AMQPConnectorException, not an AMQPError.
AMQP_ERRORS = (pika.exceptions.AMQPError, AMQPConnectorException, OSError)
RECONNECT = RetryPolicy(start=0.5, step=1.0, max=5.0)
# Seconds the broker may block a connection's publishes before pika drops it and we connect
# again: a consuming connector waiting for a publish's confirm (a parked message) beats again
# well within the supervisor's hang check (connector_hang_after, 120 s by default).
BLOCKED_TIMEOUT = 60
# Seconds pika gives a connection to get through TCP, TLS and the AMQP handshake (its
# stack_timeout; socket_timeout bounds the TCP connect alone): a port that takes the connection
# and never answers (a hung broker, another service on it) fails after this and is tried again.
# An amqp-def's handshake_timeout; this for a row from before it had one.
HANDSHAKE_TIMEOUT = AMQP_HANDSHAKE_TIMEOUT
# A connection fails once the broker's host acknowledged nothing sent for this many heartbeats
# (TCP_USER_TIMEOUT: link_options); pika's own heartbeat check took 7-14 s with a heartbeat of 2.
LINK_DEAD_AFTER_BEATS = 2

# pika decodes a header table by recursion: two Python calls per level of a table in a table
# (6 bytes of the frame at least), one per level of an array in an array (5 bytes). A frame
# holds at most pika.spec.FRAME_MAX_SIZE bytes, so no delivery takes pika deeper than a third
# of that. Under Python's default limit of 1,000, headers nested some 500 levels deep ended
# every connection that read them, and the message held its queue for good.
DECODE_RECURSION_LIMIT = pika.spec.FRAME_MAX_SIZE // 3 + 1_000
# ...and the JSON check of a body then goes as deep: json.loads of 43,000 nested objects takes
# 4-6 MB of C stack, more than a host's `ulimit -s` may give the main thread (2 MB: SIGSEGV,
# on every delivery of that body). So the consuming thread has a stack of its own.
DECODE_STACK = 64 * 1024 * 1024


class Reconnect(ConnectorError):
    """The session cannot go on and must start again on a new connection (the broker cancelled
    the consumer: its queue was deleted); the text says why, for the log and the status."""


def decode_any_delivery() -> None:
    """Let pika decode every delivery a broker can send (a consuming connector's process only:
    CPython 3.11 keeps Python-to-Python calls off the C stack, so the raised limit costs
    only memory for as deep as a frame goes)."""
    if sys.getrecursionlimit() < DECODE_RECURSION_LIMIT:
        sys.setrecursionlimit(DECODE_RECURSION_LIMIT)


_deep_decoders = [0, 0]  # [replays running in this process with the limit raised, the limit before]


@contextlib.contextmanager
def decoding_any_delivery() -> Iterator[None]:
    """decode_any_delivery for as long as the block runs, in a process that is not a consuming
    connector (the CLI's or the dashboard's replay): the limit it had comes back after the
    last of them (the dashboard, and the tests that call it in their own process, kept the
    raised one for good)."""
    if _deep_decoders[0] == 0:
        _deep_decoders[1] = sys.getrecursionlimit()
    _deep_decoders[0] += 1
    decode_any_delivery()
    try:
        yield
    finally:
        _deep_decoders[0] -= 1
        if _deep_decoders[0] == 0:
            sys.setrecursionlimit(_deep_decoders[1])


def parameters(amqp: dict, ca_file: str = "", watch_link: bool = True) -> pika.ConnectionParameters:
    """Connection parameters for an AMQP definition (the "amqp" part of a loaded channel).
    With use_tls the broker is verified against `ca_file` (server.conf [tls] ca_file) when
    given, else against the system's CAs. `watch_link`: a link that stops acknowledging ends
    the connection after 2 x heartbeat (link_options); False for a connection that publishes
    in bulk (the outgoing connector, a replay), which a broker's resource alarm would then cut
    (link_options says why), and which keeps pika's heartbeat check and BLOCKED_TIMEOUT."""
    ssl_options = None
    if amqp["use_tls"]:
        ssl_options = pika.SSLOptions(ssl.create_default_context(cafile=ca_file or None), amqp["host"])
    return pika.ConnectionParameters(
        host=amqp["host"],
        port=amqp["port"],
        virtual_host=amqp["vhost"],
        credentials=pika.PlainCredentials(amqp["username"], amqp["password"]),
        heartbeat=heartbeat(amqp["heartbeat"]),
        ssl_options=ssl_options,
        connection_attempts=1,
        socket_timeout=5,
        stack_timeout=handshake_timeout(amqp),
        blocked_connection_timeout=BLOCKED_TIMEOUT,
        tcp_options=link_options(heartbeat(amqp["heartbeat"])) if watch_link else None,
    )


def link_dead_after(beat: int) -> int:
    """Seconds what a connection sent may stay unacknowledged by the broker's host before the
    connection fails (TCP_USER_TIMEOUT): twice the heartbeat (`beat`, as negotiated: pika asks
    for the definition's and the broker takes it), as RabbitMQ itself gives up on a client it
    heard nothing from for two heartbeats."""
    return LINK_DEAD_AFTER_BEATS * beat


def link_options(beat: int) -> dict[str, int]:
    """pika's tcp_options for a connection with heartbeat `beat`: it fails once the broker's
    host stops acknowledging for link_dead_after(beat) s, with data sent (TCP_USER_TIMEOUT) or
    idle (keep-alive probes), as zato.connector.invoke.watch_link does for the calls to servers.

    Without it a link cut with no RST (a cable, a partition: packets dropped) was noticed only
    by pika's heartbeat check, which looks every heartbeat + 5 s at whether anything came since
    its last look: 7-14 s after the cut with a heartbeat of 2 s (13.4 s on the multi-host lab),
    and a lease holder's hand-over (zato.connector.handover), which counts from there, came that
    much later. pika sends a heartbeat every heartbeat / 2 whatever else it sends, so within
    that of a cut something waits for an acknowledgement that never comes, and the kernel ends
    the connection 2 x heartbeat later (ETIMEDOUT: pika's "Stream connection lost:
    TimeoutError(110, 'Connection timed out')"): 4-5 s with a heartbeat of 2 s.

    A broker that is merely slow or busy is not cut: its host acknowledges what arrives however
    late its process reads it. What is: a link losing so many packets that one segment goes
    unacknowledged for 2 x heartbeat, and (Linux 5.11 on) a broker that keeps its receive window
    shut for that long while more waits to go (RabbitMQ stops reading a connection it blocks
    for a resource alarm: a connection with megabytes in flight would connect again every
    2 x heartbeat of the alarm, where BLOCKED_TIMEOUT waits 60 s). So only the channels'
    connections have it (parameters' watch_link): what they send is acks and heartbeats, which
    never fill a window; the outgoing connector and a replay publish in bulk and do without."""
    dead_after = link_dead_after(beat)
    idle = max(1, dead_after // 3)
    return {
        "TCP_USER_TIMEOUT": dead_after * 1000,
        "TCP_KEEPIDLE": idle,
        "TCP_KEEPINTVL": idle,
        "TCP_KEEPCNT": 2,
    }


class BlockWatch:
    """Says when the broker blocks what a connection publishes (RabbitMQ's resource alarms: it is
    low on memory or disk, and stops reading from publishing connections until that lifts) and
    when it takes them again; meanwhile the connector's status is RUNNING/blocked with the
    broker's reason. Nothing is lost: what waits for its confirm goes out again after a reconnect."""

    def __init__(self, ctx: Context, waits: str):
        self.ctx, self.waits = ctx, waits
        self._since: float | None = None

    def attach(self, conn: pika.BlockingConnection | pika.SelectConnection) -> None:
        conn.add_on_connection_blocked_callback(self._blocked)
        conn.add_on_connection_unblocked_callback(self._unblocked)

    def _blocked(self, _conn: object, frame: pika.frame.Method) -> None:
        reason = getattr(frame.method, "reason", "") or "no reason given"
        self._since = time.monotonic()
        text = (
            f"the AMQP broker blocks this connection's publishes: {reason} (a RabbitMQ resource "
            f"alarm: memory or disk); {self.waits} until it lifts (connecting again every "
            f"{BLOCKED_TIMEOUT} s meanwhile)"
        )
        logger.warning("%s: %s", self.ctx.label, text)
        self.ctx.stats.error(text)
        self.ctx.stats.state("blocked")

    def _unblocked(self, _conn: object, _frame: object) -> None:
        took = "" if self._since is None else f" after {time.monotonic() - self._since:.1f} s"
        self._since = None
        logger.info("%s: the AMQP broker takes this connection's publishes again%s", self.ctx.label, took)
        if self.ctx.stats.data["state"] == "blocked":  # not over a stop begun meanwhile
            self.ctx.stats.state("running")


def heartbeat(stored: object) -> int:
    """The definition's heartbeat within 1..MAX_AMQP_HEARTBEAT s (a row written before the bound
    may hold 0, which would leave a vanished holder's unacked messages with the broker for as
    long as TCP takes to notice: hours)."""
    value = stored if isinstance(stored, int) and not isinstance(stored, bool) else 10
    return max(1, min(value, MAX_AMQP_HEARTBEAT))


def handshake_timeout(amqp: dict | None) -> int:
    """The definition's handshake_timeout in seconds (none, a row from before: HANDSHAKE_TIMEOUT)."""
    value = (amqp or {}).get("handshake_timeout")
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else HANDSHAKE_TIMEOUT
    )


def describe(amqp: dict) -> str:
    """Where a definition points, for logs: never the password."""
    scheme = "amqps" if amqp["use_tls"] else "amqp"
    where = f"{amqp['username']}@{amqp['host']}:{amqp['port']}{amqp['vhost']}"
    return f"{scheme}://{where} (definition {amqp['name']!r})"


def error_text(e: BaseException, amqp: dict | None = None, watched: bool = True) -> str:
    """The error's type and text, the type once (pika's connection errors start their text
    with it), at most 300 characters. No AMQP handshake in time says what that means, without
    pika's address record (a tuple of socket constants), with the handshake_timeout of `amqp`
    (the definition connected to). A connection the kernel ended because the broker's host
    stopped acknowledging (link_options) says so, with that definition's seconds; not for a
    connection without link_options (`watched` False: parameters' watch_link)."""
    text, name = str(e) or repr(e), type(e).__name__
    if "Timeout during AMQP handshake" in text or "Timeout while setting up AMQP" in text:
        text = (
            f"Timeout during AMQP handshake (none within {handshake_timeout(amqp)} s: the port takes the"
            " connection but nothing answers as an AMQP broker; a hung broker, or another service"
            " on that port)"
        )
    elif watched and f"Stream connection lost: TimeoutError({errno.ETIMEDOUT}," in text:
        beat = (amqp or {}).get("heartbeat")
        after = f"{link_dead_after(heartbeat(beat))} s, " if beat is not None else ""
        text += (
            f" (the broker's host acknowledged nothing sent for {after}twice the heartbeat: the link to"
            " it is lost)"
        )
    return (text if text.startswith(name) else f"{name}: {text}")[:300]


def login_refusal(amqp: dict, e: BaseException) -> str | None:
    """What to do when the broker refused the definition's login (403 ACCESS_REFUSED: no such
    user, a wrong password) or its virtual host (530 NOT_ALLOWED: no such vhost, or the user has
    no permission on it): what only a change of configuration ends; None for any other failure."""
    why, user, vhost, name = error_text(e, amqp), amqp["username"], amqp["vhost"], amqp["name"]
    broker = f"the AMQP broker at {amqp['host']}:{amqp['port']}"
    if isinstance(e, (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError)):
        return (
            f"{broker} refuses the login of user {user!r} ({why}): check the definition's username and "
            f"password (zato conn edit amqp-def DIR --name {name} --username USER --password -) and that "
            "the broker has that user (rabbitmqctl list_users)"
        )
    if isinstance(e, pika.exceptions.ProbableAccessDeniedError):
        return (
            f"{broker} refuses user {user!r} the virtual host {vhost!r} ({why}): fix the definition's "
            f"vhost (zato conn edit amqp-def DIR --name {name} --vhost VHOST), or create it and grant "
            f"the user on it (rabbitmqctl add_vhost {vhost}; rabbitmqctl set_permissions -p {vhost} "
            f"{user} '.*' '.*' '.*')"
        )
    return None


def say_connected(ctx: Context, amqp: dict, refusals: Refusals) -> None:
    """Connected: said at INFO, or at WARNING with how many refusals came before (once)."""
    where = f"AMQP broker {describe(amqp)}"
    worked = refusals.worked(time.monotonic())
    if worked:
        logger.warning("%s: connected to %s after %d refusal(s) over %.0f s", ctx.label, where, *worked)
    else:
        logger.info("%s: connected to %s", ctx.label, where)


def connect(ctx: Context, amqp: dict, policy: RetryPolicy = RECONNECT) -> pika.BlockingConnection | None:
    """A connection to the broker, retrying with back-off (`policy`; REFUSED, said once, for a
    login or virtual host the broker refuses); None when the connector must stop."""
    params = parameters(amqp, ctx.settings.tls_ca_file)
    where = f"AMQP broker {describe(amqp)}"
    refusals, delays, refused = Refusals(), policy.delays(), REFUSED.delays()
    while not ctx.should_stop():
        try:
            conn = pika.BlockingConnection(params)
        except AMQP_ERRORS as e:
            what = login_refusal(amqp, e)
            if what is not None:
                delay = next(refused)
                say_refused(ctx, refusals, ("login", type(e).__name__), what, delay, logger)
            else:
                delay = next(delays)
                say_reconnecting(ctx, where, error_text(e, amqp), delay)
            if ctx.wait(delay):
                return None
            continue
        say_connected(ctx, amqp, refusals)
        return conn
    return None


def close_quietly(conn: pika.BlockingConnection | None) -> None:
    if conn is None:
        return
    try:
        if conn.is_open:
            conn.close()
    except AMQP_ERRORS:
        pass


# How pika reports a connection it ended itself because it could not decode what the broker
# sent: "Stream connection lost: ValueError('year 10002 is out of range')" (its own exceptions
# print as "InvalidFieldTypeException: ..."). Network failures name an OSError there
# (ConnectionResetError(104, ...)), or no exception at all ("Transport indicated EOF").
_LOST = re.compile(r"Stream connection lost: (\w+)[(:]")


def decode_failure(e: BaseException) -> str | None:
    """What pika could not decode when it lost the connection to that (the cause's text), or
    None for a broker or network failure (an OSError: builtins', ssl's or socket's)."""
    found = _LOST.search(str(e))
    if found is None:
        return None
    name = found.group(1)
    for module in (builtins, ssl, socket):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, OSError):
            return None
    return str(e)[found.start(1) :][:300]


UNREADABLE = (
    "a delivery pika cannot decode ({cause}): it comes back on every connection and holds the"
    " queue; move or delete it with the broker's own tools (e.g. the RabbitMQ management UI's"
    " Get messages with Reject requeue false)"
)


def serve(
    ctx: Context,
    amqp: dict,
    session: Callable[[pika.BlockingConnection], None],
    transient: tuple[type[BaseException], ...] = AMQP_ERRORS,
    undecodable: Callable[[str], bool] | None = None,
) -> int:
    """Connect, run `session` on the connection, and when the broker or network fails (an
    exception in `transient`) say so and connect again; returns the process exit code.
    When pika ended the connection because it could not decode a delivery, `undecodable(cause)`
    may take that delivery off the queue (True); else the reason is said and the connector
    tries again after the longest pause (the delivery comes back on every connection)."""
    delays = RECONNECT.delays()
    while not ctx.should_stop():
        conn = connect(ctx, amqp)
        if conn is None:
            break
        try:
            session(conn)
        except Reconnect as e:
            delay, delays = _next_delay(ctx, delays)
            _reconnecting(ctx, str(e))
            logger.warning("%s: %s; reconnecting in %.1fs", ctx.label, e, delay)
            ctx.wait(delay)
        except transient as e:
            cause = decode_failure(e)
            if cause is not None:
                close_quietly(conn)
                if undecodable is not None and undecodable(cause):
                    continue
                message = UNREADABLE.format(cause=cause)
                _reconnecting(ctx, message)
                logger.error("%s: %s", ctx.label, message)
                ctx.wait(RECONNECT.max)
                continue
            delay, delays = _next_delay(ctx, delays)
            _reconnecting(ctx, f"connection lost: {error_text(e, amqp)}")
            logger.warning(
                "%s: connection lost (%s); reconnecting in %.1fs, unconfirmed messages come again",
                ctx.label,
                error_text(e, amqp),
                delay,
            )
            ctx.wait(delay)
        finally:
            close_quietly(conn)
    return ctx.exit_code or EXIT_OK


def _next_delay(ctx: Context, delays: Iterator[float]) -> tuple[float, Iterator[float]]:
    """The pause before connecting again: RECONNECT's back-off, from its start again when the
    session that just ended got as far as consuming (state running or blocked), growing while
    sessions fail before that (a queue the broker refuses: ACCESS_REFUSED, a bad name)."""
    if ctx.stats.data["state"] in ("running", "blocked"):
        delays = RECONNECT.delays()
    return next(delays), delays


def _reconnecting(ctx: Context, error: str) -> None:
    """The status of a connector about to connect again, and why."""
    ctx.stats.error(error)
    ctx.stats.state("reconnecting")
    ctx.stats.add("reconnects")


def message_label(method: pika.spec.Basic.Deliver, properties: pika.BasicProperties) -> str:
    """A delivery as log lines and status name it: its message id (any publisher chooses it, a
    newline included: printable() keeps it on its line), or its delivery tag."""
    if properties.message_id:
        return printable(properties.message_id, 120)
    return f"#{method.delivery_tag}"


def message_meta(method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, label: str = "") -> bytes:
    """What the broker said of a delivery, as the service reads it in self.request.amqp.msg
    (zato.service.messages): the properties set, and the delivery's exchange, routing key,
    redelivered flag, consumer tag and delivery tag. A header whose value nests deeper than
    MAX_HEADER_DEPTH is left out (said in the log): the message still reaches its service."""
    props = {}
    for name in AMQP_PROPERTIES:
        value = getattr(properties, name, None)
        if value is not None:
            props[name] = value
    headers = props.get("headers")
    if headers:
        deep = [name for name, value in headers.items() if jsonenc.nests_deeper(value, MAX_HEADER_DEPTH)]
        if deep:
            props["headers"] = {k: v for k, v in headers.items() if k not in deep}
            logger.warning(
                "%s: message %s: header(s) %s nest deeper than %d levels; its service gets it without them",
                label,
                message_label(method, properties),
                ", ".join(repr(name) for name in deep),
                MAX_HEADER_DEPTH,
            )
    delivery = {
        "exchange": method.exchange,
        "routing_key": method.routing_key,
        "redelivered": method.redelivered,
        "consumer_tag": method.consumer_tag,
        "delivery_tag": method.delivery_tag,
    }
    return jsonenc.dumps_lenient({"kind": "amqp", "properties": props, "delivery_info": delivery}).encode()
