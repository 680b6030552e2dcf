"""An HAProxy config for an external load balancer in front of several clusters' LBs.

The seed recommends two identical clusters behind a load balancer external to Zato; this
renders one (see docs/two-clusters.md):

    python -m zato.lb.external 0.0.0.0:8080 hostA:11223 hostB:11223 > haproxy.cfg

Each cluster's LB is health-checked on /zato-lb-alive. A request that fails on one cluster
(its LB stopped: connection refused; or it has no server left: 503) is retried on the other.
A cluster's LB host that vanishes under a request is handled as the cluster's own LB handles
a vanished server (etc/haproxy.cfg): a GET is replayed on the other cluster, a POST gets 504.
"""

from __future__ import annotations

import re
import sys

from zato.common.errors import ConfigError
from zato.lb.render import ALIVE_URI, EXTERNAL_RETRY_ON, fill, skeleton

TEMPLATE = "haproxy-external.cfg"  # etc/haproxy-external.cfg


_ENDPOINT_RE = re.compile(r"[^\s\\\"'#]{1,253}")


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not _ENDPOINT_RE.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{value!r} is not host:port")
    return host, int(port)


def render_external(bind: str, lbs: list[str], check_inter_ms: int = 500) -> str:
    """haproxy.cfg text from etc/haproxy-external.cfg: a frontend on `bind` spreading requests
    over the LBs in `lbs`."""
    _host_port(bind)
    if not lbs:
        raise ConfigError("at least one cluster load balancer (host:port) is needed")
    servers = []
    for i, lb in enumerate(lbs, 1):
        host, port = _host_port(lb)
        servers.append(f"    server cluster{i} {host}:{port} check inter {check_inter_ms} fall 2 rise 1")
    values: dict[str, str | int] = {
        "count": len(lbs),
        "check_inter_ms": int(check_inter_ms),
        "retry_on": EXTERNAL_RETRY_ON,
        "bind": bind,
        "alive_uri": ALIVE_URI,
    }
    return fill(skeleton(TEMPLATE), values, {"servers": servers})


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(
            "usage: python -m zato.lb.external BIND_HOST:PORT LB_HOST:PORT [LB_HOST:PORT ...]",
            file=sys.stderr,
        )
        return 2
    try:
        sys.stdout.write(render_external(argv[0], argv[1:]))
    except ConfigError as e:
        print(f"zato: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
