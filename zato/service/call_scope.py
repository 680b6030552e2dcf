"""What one call of a service (an HTTP request, an invoke_async call, with every service it
invokes) leaves behind, put right when the call ends: `ServiceStore.run` runs the call inside
`call_scope(service)`, and code that hands the service something it must give back (an SQL
session: zato/service/out_sql.py) notes a function that gives it back with `at_end`.

The scope is a context variable: each gevent greenlet (each request) has its own, and a
greenlet a service spawns starts with none (at_end then does nothing)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar

logger = logging.getLogger("zato.service")

# (service name, functions to run at the end, each given that name) of the call running now
_SCOPE: ContextVar[tuple[str, list[Callable[[str], None]]] | None] = ContextVar(
    "zato_call_scope", default=None
)


def at_end(fn: Callable[[str], None]) -> None:
    """Run fn(service name) when the call running now ends (nothing outside a call)."""
    scope = _SCOPE.get()
    if scope is not None:
        scope[1].append(fn)


@contextlib.contextmanager
def call_scope(service: str) -> Iterator[None]:
    """A call of `service`: what at_end was given meanwhile runs when it ends, however it ends;
    one that fails is logged and the others run."""
    ends: list[Callable[[str], None]] = []
    token = _SCOPE.set((service, ends))
    try:
        yield
    finally:
        _SCOPE.reset(token)
        for fn in ends:
            try:
                fn(service)
            except Exception:  # noqa: BLE001 - the call's own outcome stands
                logger.exception("service %s: cannot put right what its call left behind", service)
