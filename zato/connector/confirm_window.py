"""The bookkeeping of publishes awaiting their publisher confirm (pure, no I/O).

A channel in confirm mode numbers its publishes 1, 2, 3...; the broker answers each with
Basic.Ack or Basic.Nack, possibly for many at once (multiple=True: every tag up to this one).
A mandatory message no queue takes comes back as Basic.Return before its ack. Returns carry
no delivery tag, but they come in publish order, so a return belongs to the oldest
unconfirmed, not yet returned publish with the same exchange, routing key and body.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Publish:
    raw: str  # the message as stored in Redis (removed or parked by it)
    exchange: str
    routing_key: str
    body: bytes
    returned: str = ""  # why the broker returned it (unroutable), "" if it did not


@dataclass(frozen=True)
class Settled:
    """Publishes the broker answered: `done` may leave the processing list, `park` must be
    parked with its reason."""

    done: list[str]
    park: list[tuple[str, str]]


class ConfirmWindow:
    def __init__(self, size: int):
        self.size = size
        self._tag = 0
        self._open: OrderedDict[int, Publish] = OrderedDict()
        self.bytes = 0  # the size of the stored messages awaiting their confirm

    def __len__(self) -> int:
        return len(self._open)

    @property
    def room(self) -> int:
        return max(0, self.size - len(self._open))

    def raws(self) -> set[str]:
        """The messages published and not confirmed yet."""
        return {p.raw for p in self._open.values()}

    def published(self, p: Publish) -> int:
        """Record a publish just sent; returns its delivery tag."""
        self._tag += 1
        self._open[self._tag] = p
        self.bytes += len(p.raw)
        return self._tag

    def returned(self, exchange: str, routing_key: str, body: bytes, reason: str) -> bool:
        """The broker returned a message; False when no open publish matches it."""
        for p in self._open.values():
            if not p.returned and (p.exchange, p.routing_key, p.body) == (exchange, routing_key, body):
                p.returned = reason
                return True
        return False

    def confirmed(self, tag: int, multiple: bool, ack: bool) -> Settled:
        """Basic.Ack (ack=True) or Basic.Nack for `tag` (and every earlier one if multiple)."""
        if multiple:  # tags grow in publish order: the confirmed ones are at the front
            tags = list(itertools.takewhile(lambda t: t <= tag, self._open))
        else:
            tags = [tag] if tag in self._open else []
        done, park = [], []
        for t in tags:
            p = self._open.pop(t)
            self.bytes -= len(p.raw)
            if not ack:
                park.append((p.raw, "the broker refused it (basic.nack)"))
            elif p.returned:
                park.append((p.raw, p.returned))
            else:
                done.append(p.raw)
        return Settled(done, park)
