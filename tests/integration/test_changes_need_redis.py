"""A change to deployed modules, channels or connections is written to the ODB and then told
to the servers through Redis. With Redis unreachable nothing is changed (before: the ODB was
changed and the command failed, and running it again said there was nothing to do); when
only the announcement fails, the error says the change is saved and when servers see it, and
deploying once more announces it again. A real ODB (SQLite), a real redis-server of the
test's own (an ACL user that may not PUBLISH) and a closed port for "unreachable"."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
import redis
import requests

from tests.support import REDIS_URL, cluster_name, free_port, private_redis, wait_for
from zato.common.errors import CoordError
from zato.config.settings import RedisSettings, ServerSettings
from zato.connector import definitions
from zato.coord.client import connect
from zato.coord.keys import Keys
from zato.odb import api as odb_api
from zato.odb import connectors
from zato.odb.engine import ODB, create_schema
from zato.server.pickup import PickupDir
from zato.service import channels
from zato.service.deploy import deploy, undeploy

SOURCE = "from zato.service import Service\n\nclass Hi(Service):\n    name = 'redis.hi'\n"


@pytest.fixture
def odb(tmp_path):
    url = f"sqlite:///{tmp_path / 'odb.db'}"
    db = ODB(url)
    create_schema(db.engine)
    name = cluster_name("nored")
    odb_api.ensure_cluster(db, name)
    yield db, name
    db.dispose()


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, with a user that may do anything but PUBLISH."""
    with private_redis() as (port, admin):
        admin.execute_command(
            "ACL", "SETUSER", "mute", "on", ">mute-password", "~*", "&*", "+@all", "-publish"
        )
        yield port, admin


def unreachable() -> redis.Redis:
    return connect(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))  # nothing listens there


def test_an_unreachable_redis_changes_nothing(odb):
    db, cluster = odb
    down = unreachable()
    with pytest.raises(CoordError, match="reaching Redis, which tells the servers of changes"):
        deploy(db, down, cluster, "hi", SOURCE)
    assert odb_api.list_modules(db, cluster) == []
    ch = odb_api.make_channel("hi", "/hi", "redis.hi")
    with pytest.raises(CoordError, match="reaching Redis"):
        channels.save(db, down, cluster, ch)
    assert odb_api.list_channels(db, cluster) == []
    with pytest.raises(CoordError, match="reaching Redis"):
        definitions.create(db, down, cluster, "amqp-def", {"name": "rabbit", "host": "127.0.0.1"})
    assert connectors.list_all(db, cluster) == []
    up = connect(RedisSettings(url=REDIS_URL))
    try:
        deploy(db, up, cluster, "hi", SOURCE)
        with pytest.raises(CoordError, match="reaching Redis"):
            undeploy(db, down, cluster, "hi")
        assert [m.name for m in odb_api.list_modules(db, cluster)] == ["hi"]  # still deployed
        undeploy(db, up, cluster, "hi")
    finally:
        up.close()


def test_a_failed_announcement_says_the_change_is_saved_and_deploying_again_announces_it(odb, own_redis):
    db, cluster = odb
    port, admin = own_redis
    mute = connect(RedisSettings(url=f"redis://mute:mute-password@127.0.0.1:{port}/0"))
    with pytest.raises(CoordError) as e:
        deploy(db, mute, cluster, "hi", SOURCE)
    assert "module hi version 1 is saved in the ODB, but the servers were not told" in str(e.value)
    assert str(e.value).endswith(  # its ACL refused PUBLISH: the servers' connections do not break
        "; their own Redis connections are fine, so each applies it only when it restarts: restart them"
        " once the event can be published"
    )
    assert [m.name for m in odb_api.list_modules(db, cluster)] == ["hi"]
    listener = admin.pubsub()
    listener.subscribe(Keys(cluster).events)
    wait_for(lambda: listener.get_message(timeout=0.1), 5, what="subscribed")
    result = deploy(db, connect(RedisSettings(url=f"redis://127.0.0.1:{port}/0")), cluster, "hi", SOURCE)
    assert not result.changed  # the same source: stored once, announced again
    message = wait_for(lambda: listener.get_message(timeout=0.1), 5, what="the deploy event")
    assert b'"kind": "deploy"' in message["data"] and b'"module": "hi"' in message["data"]
    listener.close()
    mute.close()


def test_pickup_tries_a_module_again_once_redis_answers(odb, tmp_path):
    db, cluster = odb
    settings = ServerSettings(
        path=str(tmp_path), name="s1", cluster=cluster, host="127.0.0.1", port=1, workers=1, odb_url=db.url,
        redis=RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"), admin_username="admin",
        admin_password="pw", cluster_secret="s",
    )  # fmt: skip
    os.makedirs(settings.pickup_dir)
    with open(os.path.join(settings.pickup_dir, "later.py"), "w") as f:
        f.write(SOURCE)
    pickup = PickupDir(settings, interval=0.05)

    def ticked_until(done) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 20
        while not done() and time.monotonic() < deadline:
            pickup.tick()
            time.sleep(0.05)

    ticked_until(lambda: "later.py" in str(pickup.retry_at))
    assert os.path.exists(os.path.join(settings.pickup_dir, "later.py"))  # waiting, not "broken"
    assert pickup.reported == {} and odb_api.list_modules(db, cluster) == []
    pickup.settings = dataclasses.replace(settings, redis=RedisSettings(url=REDIS_URL))  # Redis is back
    pickup.retry_at = dict.fromkeys(pickup.retry_at, 0.0)  # instead of waiting pickup.RETRY
    processed = os.path.join(settings.pickup_dir, "processed", "later.py")
    ticked_until(lambda: os.path.exists(processed))
    assert os.path.exists(processed) and [m.name for m in odb_api.list_modules(db, cluster)] == ["later"]


def test_the_admin_api_answers_503_naming_redis_when_it_cannot_announce(own_redis, quickstart):
    """A server whose Redis went away: deploy, undeploy and channel changes through the admin
    API are a 503 saying why, and nothing is changed (before: deploy was a bare 500)."""
    port, admin = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    qs = quickstart(servers=1, lb=False, extra_conf={"kvdb": {"url": url}})
    qs.start("server1")
    base = qs.server_url("server1") + "/zato/admin"
    admin.shutdown(nosave=True)  # Redis goes away under the running server
    for method, path, kw in (
        ("POST", "/deploy?name=late", {"data": SOURCE.encode()}),
        ("DELETE", "/deploy/late", {}),
        ("POST", "/channels", {"json": {"name": "late", "url_path": "/late", "service": "redis.hi"}}),
        ("DELETE", "/channels/late", {}),
    ):
        r = requests.request(method, base + path, auth=qs.admin_auth, timeout=30, **kw)
        assert r.status_code == 503, (path, r.text)
        assert "reaching Redis, which tells the servers of changes" in r.json()["zato_env"]["details"]
    odb = ODB(qs.settings("server1").odb_url)
    try:
        assert odb_api.list_modules(odb, qs.cluster) == [] and odb_api.list_channels(odb, qs.cluster) == []
    finally:
        odb.dispose()
    assert requests.get(qs.server_url("server1") + "/zato/ping", timeout=10).status_code == 200
