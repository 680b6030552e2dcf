"""The project's exception tree. Every error a user can cause is one of these.

    ZatoError
     ├─ ConfigError          a config file or value is missing or malformed
     ├─ ODBError             the configuration database cannot be reached or used
     ├─ CoordError           Redis (membership, lease, events, queues) failed
     │   ├─ CoordUnavailable Redis cannot be reached (connection refused, timeout, no master)
     │   ├─ CoordDataError   Redis answered with an error (WRONGTYPE, a script error): a bug
     │   └─ LeaseLost        this process is no longer the connector-server lease holder
     ├─ ComponentError       a component directory is wrong, or its process is in a bad state
     │   └─ AlreadyRunning   the pidfile points at a live process
     ├─ ServiceError         a service cannot be found, loaded or invoked
     │   ├─ ServiceNotFound
     │   ├─ InputError       a request lacks a declared input or gives a malformed one (400)
     │   └─ DeployError      a deployed module does not compile or defines no service
     ├─ LBError              HAProxy config or Runtime API failure
     └─ ConnectorError       a connector definition or connector process failed
         ├─ MissingDependency  an optional package a connector needs is not installed
         └─ OutgoingNotFound   no active outgoing connection of that name (also a LookupError)
"""

from __future__ import annotations


class ZatoError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ZatoError):
    pass


class ODBError(ZatoError):
    pass


class CoordError(ZatoError):
    pass


class CoordUnavailable(CoordError):
    """Redis did not answer: retrying later may help."""


class CoordDataError(CoordError):
    """Redis answered with an error (WRONGTYPE, a failing script...): retrying will not help."""


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


class OutgoingNotFound(ConnectorError, LookupError):
    """A service asked for an outgoing connection that is not defined or not active."""


# Named process exit codes (gunicorn style) so a supervisor can tell why a child ended.
EXIT_OK = 0
EXIT_CONFIG = 3  # bad configuration: restarting will not help
EXIT_DEPENDENCY = 4  # Redis / ODB / broker unreachable at start
EXIT_LEASE_LOST = 5  # a connector stopped because its holder lost the lease
