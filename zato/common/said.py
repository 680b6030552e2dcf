"""How a ZatoError is said to the user on its one line (`zato: error: ...`), with what to do
where its own text does not say it: the CLI's commands, and a component `zato start` spawned
whose check failed (zato.lifecycle.entry.pass_gate), say it alike."""

from __future__ import annotations

from zato.common.errors import CoordError, CoordNotSent, CoordUnavailable, ODBError, ZatoError


def say(e: ZatoError, kvdb: str = "the cluster's server.conf") -> str:
    """The error's one line; when it ends with redis-py's own words for a Redis that did not
    answer at all, what to do (one that answered with a refusal, NOPERM, says its own; a
    message that goes on after them says what to do itself); when Redis is a read-only replica,
    what to do as the servers' logs say it (zato.coord.health.REPLICA); an ODB error, which ODB.
    `kvdb`: the file whose [kvdb] says where Redis is."""
    from zato.coord import health

    text = str(e)
    if type(e) in (CoordUnavailable, CoordNotSent) and text.endswith(_not_answering(e)):
        return f"{text.rstrip('.')}: is Redis running there? ([kvdb] in {kvdb} says where)"
    if isinstance(e, CoordError) and health.is_replica(e) and health.REPLICA not in text:
        return f"{text.rstrip('.')}; {health.REPLICA}"
    if isinstance(e, ODBError) and e.where and e.where not in text:  # which ODB, and where that is set
        return f"{text.rstrip('.')} (the ODB at {e.where}: [odb] url in the cluster's server.conf)"
    return text


def _not_answering(e: BaseException) -> str:
    """redis-py's text of the ConnectionError or TimeoutError under `e`, or a text no message ends with."""
    cause = e.__cause__
    while cause is not None:
        kind = type(cause)
        if kind.__module__.startswith("redis") and kind.__name__ in ("ConnectionError", "TimeoutError"):
            return f"{kind.__name__}: {cause}"
        cause = cause.__cause__
    return "\0"
