"""Secrets in what the cluster shows: `zato cluster status` and the logs name the Redis a
cluster uses by its URL, and never with its password (docs/trust.md)."""

from __future__ import annotations

from tests.support import cluster_name, free_port, redis_server, stop_process, wait_for, zato

PASSWORD = "secaudit-redis-password-4711"


def test_a_redis_password_given_without_a_user_is_not_shown_nor_logged(quickstart, tmp_path):
    """[kvdb] url = redis://:PASSWORD@host:port/0, Redis's own form for `requirepass` (no user
    name). Before, `zato cluster status` printed the whole URL, password included, at every run,
    and the server's log said it again in each line about Redis being away: only URLs with a
    user name before the ":" had their password hidden."""
    port = free_port()
    proc = redis_server(port, tmp_path, "--requirepass", PASSWORD)
    try:
        url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
        conf = {"kvdb": {"url": url}}
        qs = quickstart(servers=1, cluster=cluster_name("secaudit"), lb=False, extra_conf=conf)
        qs.start()
        status = zato("cluster", "status", qs.path, check=False)  # exit 1: no load balancer runs
        assert f"redis://:******@127.0.0.1:{port}/0" in status.stdout, status.stdout
        assert PASSWORD not in status.stdout + status.stderr
    finally:
        stop_process(proc)
    # Redis away: the server says so in its log, naming the Redis it cannot reach
    wait_for(lambda: f"127.0.0.1:{port}" in qs.server_logs(), 30, what="server.log naming the Redis away")
    logs = qs.server_logs("*.log")
    assert f"redis://:******@127.0.0.1:{port}/0" in logs
    assert PASSWORD not in logs
