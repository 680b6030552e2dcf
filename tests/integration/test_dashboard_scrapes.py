"""The dashboard scrapes every live server's /metrics at once (zato.dashboard.state.Collector).

Before, one at a time: each server that did not answer held the page's refresh for the scrape
timeout (0.5 s) before the next was asked, so ten hung servers made it five seconds old. Here
two live members (entries signed with the cluster's key in the test Redis) point at two HTTP
endpoints that answer only once both scrapes have arrived: asked one after the other, the first
waits in vain and is said not to answer; asked at once, both answer.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support import cleanup_redis, cluster_name, sqlite_server
from zato.coord import membership
from zato.coord.client import connect
from zato.coord.signing import member_key

METRICS = b'# TYPE zato_http_requests_total counter\nzato_http_requests_total{server="x"} 7\n'


class Together:
    """HTTP endpoints whose /metrics answers once `parties` requests are in (within 2 s)."""

    def __init__(self, parties: int):
        barrier = threading.Barrier(parties, timeout=2)
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                paths.append(self.path)
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    self.send_error(503, "alone")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(METRICS)))
                self.end_headers()
                self.wfile.write(METRICS)

            def log_message(self, *args) -> None:
                pass

        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(parties)]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def ports(self) -> list[int]:
        return [server.server_address[1] for server in self.servers]

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def test_every_live_server_is_scraped_at_once(tmp_path):
    from zato.config.settings import DashboardSettings
    from zato.dashboard.state import Collector

    cluster, secret = cluster_name("dashscrapes"), "a-cluster-secret-of-the-dashboard-test"
    odb, server = sqlite_server(tmp_path, cluster)
    settings = DashboardSettings(
        path=str(tmp_path), cluster=cluster, host="127.0.0.1", port=8183, odb_url=server.odb_url,
        redis=server.redis, admin_username="admin", admin_password="password1", cluster_secret=secret,
    )  # fmt: skip
    endpoints = Together(2)
    client = connect(settings.redis)
    try:
        key = member_key(secret, cluster)
        for i, port in enumerate(endpoints.ports(), 1):
            member = membership.Member(f"server{i}", "127.0.0.1", port, 4000 + i, time.time())
            membership.announce(client, cluster, member, 30, key)
        collector = Collector(settings, client, odb)
        collector.refresh()
        servers = collector.snapshot["servers"]
        assert sorted(s["name"] for s in servers) == ["server1", "server2"] and all(
            s["live"] for s in servers
        )
        assert endpoints.paths == ["/metrics", "/metrics"]
        late = [e for e in collector.snapshot["errors"] if "did not answer within" in e]
        assert late == [], late  # one at a time: "server server1: its http://.../metrics did not answer"
    finally:
        endpoints.close()
        client.close()
        odb.dispose()
        cleanup_redis(cluster)
