"""The project's exception tree. Every error a user can cause is one of these.

Classes defined here, plus (in parentheses) those defined next to the code that raises them,
each a subclass of its parent here; import those from their own module.

    ZatoError
     ├─ ConfigError          a config file or value is missing or malformed
     ├─ ODBError             the configuration database cannot be reached or used
     │   └─ ODBUnavailable   it cannot be reached (refused, timed out, connection lost):
     │                       retrying later may help
     ├─ CoordError           Redis (membership, lease, events, queues) failed
     │   ├─ CoordUnavailable Redis cannot be reached (connection refused, timeout, no master)
     │   │   ├─ CoordRefused  it answers but refuses every write (MISCONF, READONLY, OOM)
     │   │   └─ CoordNotSent  it could not be reached before a command was sent: the
     │   │                    command did not run (zato.coord.changes)
     │   ├─ CoordODBUnavailable the ODB, not Redis, did not answer the lease's epoch floor
     │   │                    (zato.odb.epoch): retried as an outage, said as the ODB's
     │   ├─ CoordDataError   Redis answered with an error (WRONGTYPE, a script error): a bug
     │   │   ├─ CoordForbidden its ACL refuses the command or key to the URL's user (NOPERM):
     │   │   │                an outage its operator mends (docs/redis-acl.md)
     │   │   └─ BadEntry     (zato.coord.parse) a value read from Redis has the wrong shape
     │   └─ LeaseLost        this process is no longer the connector-server lease holder
     │       └─ StaleEpoch   (zato.coord.queues) Redis refused a move under an older epoch
     ├─ ComponentError       a component directory is wrong, or its process is in a bad state
     │   ├─ AlreadyRunning   the pidfile points at a live process
     │   └─ EntryExit        (zato.lifecycle.entry) a process entry point ends before its
     │                       work: a wrong command line or config; carries the exit code
     ├─ ServiceError         a service cannot be found, loaded or invoked
     │   ├─ ServiceNotFound
     │   ├─ InputError       a request lacks a declared input or gives a malformed one (400)
     │   │   └─ NoneOfInputs (zato.service.sio) self.request.input.require_any(...) found
     │   │                   none of them; also a ValueError, as Zato raises
     │   ├─ DeployError      a deployed module does not compile or defines no service
     │   ├─ NotSupported     (zato.service.unsupported) a service used a Zato API this server
     │   │                   leaves out (self.pubsub, self.out.sftp...); also an AttributeError
     │   ├─ MessageStateError (zato.service.messages) self.request.amqp.ack() after reject(),
     │   │                   or the reverse
     │   └─ Reportable       (zato.common.exception; Zato's ZatoException) a service's own
     │       │               error, answered with its HTTP status
     │       ├─ BadRequest 400, Unauthorized 401, Forbidden 403, NotFound 404,
     │       │  MethodNotAllowed 405, NotAcceptable 406, Conflict 409, TooManyRequests 429,
     │       │  InternalServerError 500, ServiceUnavailable 503   (zato.common.exception)
     │       └─ LockTimeout  (zato.common.exception) self.lock(...) was not taken in time (409)
     ├─ HTTPError            (zato.server.wsgi) answer this request with a status and detail
     ├─ Refused              (zato.server.channel_security) a secured HTTP channel's caller
     │                       did not present its credentials (401)
     ├─ BodyError            (zato.server.body) a request body cannot be served (413, 400...)
     │   └─ Malformed        (zato.server.body) a body gunicorn cannot decode (400, logged once a minute)
     ├─ ClientGone           (zato.server.body) the client left before its whole body arrived
     ├─ NotReading           (zato.server.slow_readers) the client took no byte of its answer
     │                       for [limits] send_timeout; also a BrokenPipeError (EPIPE), so
     │                       gunicorn closes the connection as for a client gone
     ├─ BatchError           (zato.common.batch) a batch of internal invocations, or its
     │                       answer, is malformed
     ├─ LBError              HAProxy config or Runtime API failure
     │   └─ UnsafeValue      (zato.lb.render) a value not provably safe in haproxy.cfg
     ├─ ConnectorError       a connector definition or connector process failed
     │   ├─ MissingDependency  an optional package a connector needs is not installed
     │   │   └─ MissingDriver  (zato.connector.ibmmq_common) neither ibmmq nor pymqi imports
     │   ├─ OutgoingNotFound   no active outgoing connection of that name (also a LookupError)
     │   ├─ DefinitionNotFound (zato.odb.connectors) no definition of that kind and name
     │   ├─ NoServer           (zato.connector.invoke) no live server answered a connector
     │   ├─ Reconnect          (zato.connector.amqp_common) an AMQP session must start again
     │   │                     on a new connection (e.g. the broker cancelled the consumer)
     │   ├─ NoAnswer           (zato.connector.invoke) a server took a call and did not answer
     │   │                     in time (inside the Invoker: a TIMED_OUT Result to its callers)
     │   ├─ ServerGone         (zato.connector.invoke) the server a call waits on left the
     │   │                     live members (inside the Invoker: NoServer to its callers)
     │   ├─ AnswerCut          (zato.connector.invoke) a server's answer began and was cut
     │   │   │                 (inside the Invoker: an UNUSABLE Result to its callers)
     │   │   └─ TakenNotAnswered  a server took the call and closed the connection without
     │   │                     an answer: its worker ended (UNUSABLE too)
     │   ├─ RescueError        (zato.connector.amqp_rescue) parking a delivery pika cannot
     │   │                     decode failed (nothing was acked)
     │   └─ ReplayError        (zato.connector.amqp_replay) replaying an AMQP channel's parked
     │       │                 messages could not start or stopped (the broker failed or refused)
     │       └─ BrokerUnreachable (zato.connector.amqp_replay) the broker could not be reached
     │                         or the connection to it was lost (the dashboard answers 503)
     └─ ActionError          (zato.dashboard.actions) a dashboard action with a bad argument (400)
         ├─ ActionNotFound   (zato.dashboard.actions) it names a server, connector or
         │                   connection the cluster does not have (404)
         └─ ActionConflict   (zato.dashboard.actions) the same action is already running in
                             this dashboard (409: a second click on Replay parked)

Outside the tree on purpose: zato.service.deploy._OverBudget, a BaseException raised inside
the deploy validation child when a module's import overruns its budget, so that the module's
own `except Exception` cannot swallow it; it never leaves that child. And
zato.dashboard.web.SlowClient, a BaseException a dashboard connection's time limit raises in
its greenlet while it reads a request, so that bottle's catch-all cannot make it a 500; the
handler answers it with 408 and closes the connection.
tests/unit/test_errors_tree.py checks that every exception class in zato/ is listed here.
"""

from __future__ import annotations


class ZatoError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ZatoError):
    pass


class ODBError(ZatoError):
    where = ""  # the ODB's URL (password masked) when known: the CLI says it after the error


class ODBUnavailable(ODBError):
    """The ODB did not answer: retrying later may help."""

    at_commit = False  # the link broke once the commit was sent: the ODB may have made the change


class CoordError(ZatoError):
    pass


class CoordUnavailable(CoordError):
    """Redis did not answer: retrying later may help."""


class CoordRefused(CoordUnavailable):
    """Redis answers reads but refuses every write for now (MISCONF, READONLY, OOM): an outage
    its operator mends, as one where it does not answer."""


class CoordNotSent(CoordUnavailable):
    """Redis could not be reached before a command was sent: the command did not run."""


class CoordODBUnavailable(CoordError):
    """The ODB, not Redis, did not answer a coordination step (the lease's epoch floor,
    zato.odb.epoch): retried as a Redis outage is, but said as the ODB's."""


class CoordDataError(CoordError):
    """Redis answered with an error (WRONGTYPE, a failing script...): retrying will not help."""


class CoordForbidden(CoordDataError):
    """Redis's ACL refuses a command or key to the user of [kvdb] url (NOPERM): not a bug of
    ours, and retrying does not help until its operator grants it (docs/redis-acl.md)."""


class LeaseLost(CoordError):
    pass


class ComponentError(ZatoError):
    pass


class AlreadyRunning(ComponentError):
    pass


class ServiceError(ZatoError):
    pass


class ServiceNotFound(ServiceError):
    pass


class DeployError(ServiceError):
    pass


class InputError(ServiceError):
    """Bad input to a service: answered 400 in Zato's envelope with this text."""


class LBError(ZatoError):
    pass


class ConnectorError(ZatoError):
    pass


class MissingDependency(ConnectorError):
    """An optional package (e.g. the IBM MQ client) is not installed: restarting will not help."""


class OutgoingNotFound(ConnectorError, KeyError):
    """A service asked for an outgoing connection that is not defined or not active: `kind`
    (http-outgoing, amqp-outgoing...) and `name` of it, and `service`, the innermost service
    it reached uncaught (set by the service store). A KeyError, as in Zato (whose services
    catch `except KeyError:` around `self.out.rest[name]`), whose text is its message."""

    def __init__(self, msg: str, kind: str = "", name: str = "") -> None:
        super().__init__(msg)
        self.kind, self.name = kind, name
        self.service: str | None = None

    def __str__(self) -> str:  # KeyError's own would quote it: 'no active ...'
        return str(self.args[0]) if self.args else ""


# Named process exit codes (gunicorn style) so a supervisor can tell why a child ended.
EXIT_OK = 0
EXIT_CONFIG = 3  # bad configuration: restarting will not help
EXIT_DEPENDENCY = 4  # Redis / ODB / broker unreachable at start
EXIT_LEASE_LOST = 5  # a connector stopped because its holder lost the lease
