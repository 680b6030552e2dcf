"""Rejected credentials on a server's own port: security events, said but bounded.

Any client can send wrong credentials in a loop: an internal call with a bad or missing
X-Zato-Signature or X-Zato-Epoch, the admin API's, Zato's invoke endpoints' or /metrics' HTTP
Basic, a secured channel's Basic or API key. Each was a WARNING line (before: 2,000 bad calls, 2,000
lines). Now each kind (each channel apart) is said in full, with the client's address and
what was wrong, BURST times per [logging] client_warning_interval at most in each worker, the
next line saying how many went unsaid meanwhile; every one is counted in
zato_server_rejected_credentials_total{kind} (docs/metrics.md). No secret is ever in a line.
"""

from __future__ import annotations

import logging

from zato.server import metrics
from zato.server.body import Throttled

logger = logging.getLogger("zato.http")

INTERNAL, ADMIN, INVOKE, CHANNEL = "internal", "admin", "invoke", "channel"  # the metric's kinds
METRICS = "metrics"  # a scrape of /metrics without the [metrics] credentials
BURST = 5  # lines in full per interval and kind: a few mistakes are each seen, a flood is not
MAX_KEYS = 1000  # channels' throttles kept; started over when full (channels are the cluster's own)


class Rejections:
    """One worker's throttles of rejected-credentials lines, by kind (and channel)."""

    def __init__(self, every: float, burst: int = BURST):
        self.every, self.burst = every, burst
        self._said: dict[tuple[str, str], Throttled] = {}

    def say(self, kind: str, cid: str, what: str, *args: object, channel: str = "") -> None:
        """A WARNING line `what` % args (after the CID), if this kind's turn; counted either way
        (after its line: a count read says that line was written)."""
        key = (kind, channel)
        said = self._said.get(key)
        if said is None:
            if len(self._said) >= MAX_KEYS:
                self._said = {}
            said = self._said[key] = Throttled(self.every, burst=self.burst)
        unsaid = said.due()
        if unsaid is not None:
            logger.warning(
                f"cid %s: {what} (said {said.how_often} at most in each worker; %d more since the last time)",
                cid,
                *args,
                unsaid,
            )
        instruments = metrics.instruments()
        instruments.child(instruments.rejected, kind).inc()
