"""An AMQP definition whose login the broker refuses (a user it does not have, a wrong password:
403 ACCESS_REFUSED), as after a password rotated on the broker and not yet in the definition.

Before, the channel and the outgoing connector each logged a WARNING at every try, every 5 s,
for ever (24 lines a minute for the two), none saying what to do. Now, as IBM MQ's refusals:
said once with what to do, tried again after 0.5, 1, 2 ... 30 s, the status `refused`, and
'connected ... after N refusal(s)' once the broker takes the login (here: once the user is
created on the real, shared RabbitMQ; the test's own user, deleted after)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import uuid

import pytest
import redis

from tests.conn_support import (
    FakeServer,
    Rabbit,
    log_text,
    make_server_dir,
    rabbitmqctl,
    set_epoch,
    start_connector,
    stop_process,
)
from tests.support import REDIS_URL, cleanup_redis, cluster_name, wait_for
from zato.coord import connector_stats
from zato.odb import connectors
from zato.odb.engine import ODB


@pytest.fixture
def env(tmp_path):
    cluster = cluster_name("amqplr")
    user, password = f"zt-login-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    procs: list[subprocess.Popen] = []
    try:
        server_dir = make_server_dir(str(tmp_path), cluster)
        odb = ODB(f"sqlite:///{tmp_path}/odb.sqlite")
        set_epoch(cluster, 1)
        fake, rabbit = FakeServer(cluster), Rabbit()
        queue = rabbit.queue(f"zt-login-{uuid.uuid4().hex[:8]}")
        connectors.create(odb, cluster, "amqp-def", {"name": "login", "username": user, "password": password})
        yield dict(
            cluster=cluster, dir=server_dir, odb=odb, fake=fake, rabbit=rabbit, queue=queue,
            user=user, password=password, procs=procs,
        )  # fmt: skip
        for p in procs:
            stop_process(p)
        rabbit.close()
        fake.close()
        odb.dispose()
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            rabbitmqctl("delete_user", user)
        cleanup_redis(cluster)


def _stats(env, key: str) -> dict:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    return connector_stats.read(client, env["cluster"], [key]).get(key, {})


def _refused_lines(env) -> list[str]:
    return [line for line in log_text(env["dir"]).splitlines() if "ACCESS_REFUSED" in line]


def _tries(env, key: str) -> int:
    """Connection attempts the broker refused so far, as the log or the status tells them."""
    counted = re.search(r"refused (\d+) time\(s\)", _stats(env, key).get("last_error") or "")
    return max(len(_refused_lines(env)), int(counted[1]) if counted else 0)


@pytest.mark.parametrize("kind", ["amqp-channel", "amqp-outgoing"])
def test_a_login_the_broker_refuses_is_said_once_with_what_to_do_until_it_works(env, kind):
    if kind == "amqp-channel":
        fields = {"queue": env["queue"], "service": "demo.login"}
    else:
        fields = {"routing_key": env["queue"]}
    connectors.create(env["odb"], env["cluster"], kind, {"name": "lr", "def": "login", **fields})
    key = f"{kind}:lr"
    env["procs"].append(start_connector(env["dir"], kind, "lr"))
    wait_for(lambda: _tries(env, key) >= 4, timeout=60, what="4 refused logins")

    lines = _refused_lines(env)
    assert len(lines) == 1, "\n".join(lines)  # before: one WARNING per try, every 5 s for ever
    assert " ERROR " in lines[0] and f"refuses the login of user {env['user']!r}" in lines[0]
    assert "zato conn edit amqp-def DIR --name login" in lines[0]  # what to do
    stats = _stats(env, key)
    assert stats["state"] == "refused" and "ACCESS_REFUSED" in stats["last_error"]

    rabbitmqctl("add_user", env["user"], env["password"])  # the operator creates the user
    rabbitmqctl("set_permissions", "-p", "/", env["user"], ".*", ".*", ".*")
    connected = re.compile(r"connected to AMQP broker .* after \d+ refusal\(s\) over \d+ s")
    wait_for(lambda: connected.search(log_text(env["dir"])), timeout=60, what="connected after the refusals")
    wait_for(lambda: _stats(env, key).get("state") == "running", timeout=30, what="state running")
    if kind == "amqp-channel":
        env["rabbit"].publish(env["queue"], json.dumps({"n": 1}))
        wait_for(lambda: env["fake"].bodies("demo.login"), timeout=30, what="the message at its service")
    assert env["password"] not in log_text(env["dir"])
