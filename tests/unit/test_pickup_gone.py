"""The pickup folder forgets what it noted of a file once the file is gone (what was reported
broken, what waits for Redis or the ODB): before, those entries stayed for the server's life."""

from __future__ import annotations

import os

from zato.config.settings import RedisSettings, ServerSettings
from zato.server.pickup import PickupDir


def test_what_was_noted_of_a_file_is_forgotten_once_it_is_gone(tmp_path):
    settings = ServerSettings(
        path=str(tmp_path), name="s1", cluster="c", host="127.0.0.1", port=1, workers=1,
        odb_url=f"sqlite:///{tmp_path}/odb.db", redis=RedisSettings(url="redis://127.0.0.1:1/0"),
        admin_username="admin", admin_password="pw", cluster_secret="s",
    )  # fmt: skip
    os.makedirs(settings.pickup_dir)
    (tmp_path / "elsewhere.py").write_text("x = 1\n")
    link = os.path.join(settings.pickup_dir, "linked.py")
    os.symlink(tmp_path / "elsewhere.py", link)  # refused at once, without a child process
    pickup = PickupDir(settings, interval=0.0)
    waiting = os.path.join(settings.pickup_dir, "waiting.py")
    pickup.retry_at[waiting] = float("inf")  # as if Redis had not answered for it
    pickup.tick()
    assert list(pickup.reported) == [link] and waiting not in pickup.retry_at
    os.remove(link)
    pickup.tick()
    assert pickup.reported == {} and pickup.retry_at == {}
