"""Zato's integration patterns, `self.patterns` in a service:

- `fanout.invoke(targets, on_final, on_target=None, cid=None)`: run every target (a dict of
  service name -> payload) at once, anywhere in the cluster; each `on_target` service gets
  each target's outcome as it comes, each `on_final` service the list of all of them once the
  last target ran. Returns the CID the targets and callbacks run under.
- `parallel.invoke(targets, on_target, cid=None)`: the same without the final callbacks.
- `invoke_retry.invoke(target, payload, repeats=, seconds= | minutes=)`: invoke, and again
  after a failure, at most `repeats` times in all; `async_fallback=True, callback=...` goes on
  in the background after the first failure and tells `callback` how it ended.

An outcome is a dict as in Zato: source, target, response, ok, exception (its type and
message, or None), req_ts_utc, resp_ts_utc, cid (and phase "on-target" for on-target
callbacks). The targets of fanout and parallel go through invoke_async's queue, at least once
(zato.coord.patterns); the retries of invoke_retry run in the caller's worker, as in Zato.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from zato.common.cid import new_cid
from zato.common.exception import ZatoException
from zato.coord import patterns as coord

logger = logging.getLogger("zato.service.patterns")


def _names(given: Any, what: str, required: bool) -> tuple[str, ...]:
    """A callback argument (a name, a class, or a list of them) as names."""
    from zato.service.base import _service_name

    if not given:
        if required:
            raise ValueError(f"{what} is required: a service's name or a list of them")
        return ()
    return tuple(_service_name(x) for x in (given if isinstance(given, (list, tuple)) else [given]))


class _Run:
    kind = ""

    def __init__(self, service: Any):
        self._service = service

    def _start(
        self, targets: Any, on_final: Any, on_target: Any, cid: str | None, final_required: bool
    ) -> str:
        from zato.service.base import _service_name

        if not isinstance(targets, dict) or not targets:
            raise ValueError(
                f"{self.kind}: targets must be a dict of service name -> payload, not {targets!r}"
            )
        pairs = [(_service_name(name), payload) for name, payload in targets.items()]
        finals = _names(on_final, f"{self.kind}: on_final", final_required)
        each = _names(on_target, f"{self.kind}: on_target", not final_required)
        cid = cid or self._service.cid
        run = self._service._store.start_pattern(self.kind, self._service.name, pairs, cid, each, finals)
        logger.info(
            "cid %s: %s %s of %d targets started by %s", cid, self.kind, run, len(pairs), self._service.name
        )
        return cid


class FanOut(_Run):
    """self.patterns.fanout"""

    kind = coord.FANOUT

    def invoke(self, targets: dict, on_final: Any, on_target: Any = None, cid: str | None = None) -> str:
        return self._start(targets, on_final, on_target, cid, final_required=True)


class ParallelExec(_Run):
    """self.patterns.parallel"""

    kind = coord.PARALLEL

    def invoke(self, targets: dict, on_target: Any, cid: str | None = None) -> str:
        return self._start(targets, None, on_target, cid, final_required=False)


class InvokeRetry:
    """self.patterns.invoke_retry"""

    def __init__(self, service: Any, sleep: Callable[[float], None] | None = None):
        self._service = service
        self._sleep = sleep or service.sleep

    def invoke(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        """Invoke `target` (arguments as self.invoke takes them) until it succeeds, at most
        `repeats` times, `seconds` (or `minutes`) apart; ZatoException once all failed. With
        `async_fallback=True` it returns the CID after the first failure and goes on in the
        background, then invokes `callback` (with `context`) with how it ended."""
        opts = _retry_options(target, kwargs)
        kwargs["cid"] = kwargs.get("cid") or new_cid()
        if opts["callback"]:
            self._service._store.get(opts["callback"])  # deployed, or the caller's error now
        if opts["async_fallback"]:
            try:
                return self._service.invoke(target, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - retried in the background, as asked
                logger.warning("cid %s: %s failed, retrying in the background: %s", kwargs["cid"], target, e)
                return self._in_background(target, args, kwargs, opts, opts["repeats"] - 1, wait_first=True)
        return self._until_done(target, args, kwargs, opts, opts["repeats"])

    def invoke_async(self, target: Any, *args: Any, **kwargs: Any) -> str:
        """invoke() with async_fallback from the start: every attempt in the background."""
        kwargs["async_fallback"] = True
        opts = _retry_options(target, kwargs)
        kwargs["cid"] = kwargs.get("cid") or new_cid()
        self._service._store.get(opts["callback"])  # deployed, or the caller's error now
        return self._in_background(target, args, kwargs, opts, opts["repeats"], wait_first=False)

    def _until_done(self, target: Any, args: tuple, kwargs: dict, opts: dict, attempts: int) -> Any:
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                return self._service.invoke(target, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the next attempt, or the error below
                last = e
                logger.info(
                    "cid %s: attempt %d of %d to invoke %s failed: %s",
                    kwargs["cid"],
                    attempt,
                    attempts,
                    target,
                    e,
                )
                if attempt < attempts:
                    self._sleep(opts["seconds"])
        # The message reaches the caller's client, uncaught: the errors themselves stay in the log.
        raise ZatoException(
            self._service.cid,
            f"retry limit reached: {target} failed {attempts} time(s), {opts['seconds']:g} s apart "
            f"(cid {kwargs['cid']}: the errors are in the server log)",
        ) from last

    def _in_background(
        self, target: Any, args: tuple, kwargs: dict, opts: dict, attempts: int, wait_first: bool
    ) -> str:
        from zato.service.base import _service_name

        service, cid = self._service, kwargs["cid"]
        started = coord.utcnow()

        def run() -> None:
            ok, response = False, None
            if attempts > 0:
                if wait_first:
                    self._sleep(opts["seconds"])
                try:
                    response, ok = self._until_done(target, args, kwargs, opts, attempts), True
                except ZatoException as e:
                    logger.warning("cid %s: %s", cid, e.msg)
            service.invoke_async(
                opts["callback"],
                {
                    "ok": ok,
                    "orig_cid": service.cid,
                    "call_cid": cid,
                    "source": service.name,
                    "target": _service_name(target),
                    "retry_seconds": opts["seconds"],
                    "retry_repeats": opts["repeats"],
                    "context": opts["context"],
                    "req_ts_utc": started,
                    "resp_ts_utc": coord.utcnow(),
                    "response": response,
                },
            )

        service.spawn(run)
        return cid


def _retry_options(target: Any, kwargs: dict) -> dict:
    """Take invoke_retry's own arguments out of `kwargs` and check them (ValueError)."""
    opts = {
        k: kwargs.pop(k, None)
        for k in ("async_fallback", "callback", "context", "repeats", "seconds", "minutes")
    }
    repeats, seconds, minutes = opts["repeats"], opts["seconds"], opts["minutes"]
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(
            f"invoke_retry of {target}: repeats must be a whole number of at least 1, not {repeats!r}"
        )
    if seconds is not None and minutes is not None:
        raise ValueError(f"invoke_retry of {target}: give seconds or minutes, not both")
    delay = seconds if seconds is not None else (minutes or 0) * 60
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
        raise ValueError(f"invoke_retry of {target}: seconds/minutes must be a number of at least 0")
    opts["seconds"] = float(delay)
    if opts["async_fallback"] and not opts["callback"]:
        raise ValueError(f"invoke_retry of {target}: async_fallback needs a callback service")
    if opts["callback"]:
        opts["callback"] = _names(opts["callback"], "callback", True)[0]
    return opts


class Patterns:
    """self.patterns of a service."""

    def __init__(self, service: Any):
        self._service = service

    @property
    def fanout(self) -> FanOut:
        return FanOut(self._service)

    @property
    def parallel(self) -> ParallelExec:
        return ParallelExec(self._service)

    @property
    def invoke_retry(self) -> InvokeRetry:
        return InvokeRetry(self._service)
