"""self.logger of a service: a standard logger that also takes Zato's `cid=` keyword.

Zato's docs log with `self.logger.info("Hello!", cid=self.cid)`; Python's Logger refuses a
keyword it does not know (TypeError), which made the service's 500. Here the line then starts
with the CID, as the server's own lines about a request do: `cid K...: Hello!`.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any


class ServiceLogger(logging.LoggerAdapter):
    """A logging.Logger's API (info, exception, isEnabledFor, setLevel...) over `logger`."""

    def __init__(self, logger: logging.Logger):
        super().__init__(logger, {})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        cid = kwargs.pop("cid", None)
        if cid:
            msg = f"cid {cid}: {msg}"
        return msg, kwargs

    def warn(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Zato 2.0's services write self.logger.warn (Python 3.13's LoggerAdapter has it no more)."""
        self.warning(msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        """The rest of a Logger (handlers, level, propagate...) is the logger's own."""
        if name.startswith("__") or name == "logger":
            raise AttributeError(name)
        return getattr(self.logger, name)


def service_logger(name: str) -> ServiceLogger:
    return ServiceLogger(logging.getLogger(name))
