"""The one helper every process entry point starts with (zato.lifecycle.entry), and the
settings a parent hands its child instead of the child reading server.conf again
(zato.config.transfer)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import pytest

from zato.common.errors import EXIT_CONFIG, ConfigError, ZatoError
from zato.config import transfer
from zato.config.settings import LBSettings, RedisSettings, ServerSettings, load_server_settings
from zato.connector import run as connector_run
from zato.connector.process import MEMBERS_KEY_ENV, OUTGOING_KEY_ENV, SETTINGS_ENV
from zato.connector.zygote import receive_settings
from zato.coord.signing import member_key, outgoing_key
from zato.lifecycle.entry import Entry, EntryExit, parent_gone
from zato.lifecycle.layout import ServerSpec, create_server_dir

ENTRY = Entry("zato-test", "python -m zato.test DIR [--fg]", "tester", flags=("--fg",))


@pytest.fixture
def server_dir(tmp_path):
    spec = ServerSpec(
        "server1", "c1", f"sqlite:///{tmp_path}/odb.db", port=17099, cluster_secret="k" * 32,
        admin_password="admin-password-1", invoke_password="invoke-password-1", sentinels="h1:26379,h2:26380",
        sentinel_master="mymaster",
    )  # fmt: skip
    return create_server_dir(str(tmp_path / "server1"), spec)


def test_a_wrong_command_line_prints_the_usage_and_exits_with_the_entry_points_code(capsys):
    ran: list = []
    assert ENTRY.main(["a", "b"], 1, lambda args, flags: ran.append(args) or 0) == 2
    assert capsys.readouterr().err == "usage: python -m zato.test DIR [--fg]\n"
    own = Entry("zato-connector", "python -m zato.connector.run ...", "connector", usage_exit=EXIT_CONFIG)
    assert own.main(["x"], 1, lambda args, flags: 0, valid=lambda args: args[0] == "y") == EXIT_CONFIG
    assert ran == []


def test_flags_are_taken_anywhere_and_the_rest_are_the_arguments():
    seen: list = []
    assert ENTRY.main(["--fg", "DIR"], 1, lambda args, flags: seen.append((args, flags)) or 7) == 7
    assert seen == [(["DIR"], frozenset({"--fg"}))]


def test_a_config_error_is_one_line_on_stderr_with_the_programs_name(tmp_path, capsys):
    def body(args: list[str], _flags: frozenset[str]) -> int:
        ENTRY.settings(None, load_server_settings, args[0])
        return 0

    assert ENTRY.main([str(tmp_path / "nothing")], 1, body) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("zato-test: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_only_the_errors_named_become_an_exit_the_others_propagate():
    def broken(_path: str) -> ServerSettings:
        raise ZatoError("not a config error")

    with pytest.raises(ZatoError):
        ENTRY.settings(None, broken, "x", errors=(ConfigError,))
    with pytest.raises(EntryExit) as e:
        ENTRY.settings(None, broken, "x", code=9)
    assert (e.value.code, e.value.line) == (9, "not a config error")


def test_settings_the_parent_gave_are_used_and_the_file_is_not_read(server_dir):
    given = load_server_settings(server_dir)
    os.remove(os.path.join(server_dir, "config", "server.conf"))
    assert ENTRY.settings(given, load_server_settings, server_dir) is given


def test_start_logs_with_the_role_to_the_components_log_file(server_dir):
    settings = load_server_settings(server_dir)
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        ENTRY.start(settings)
        logging.getLogger("zato.test").warning("hello from the entry test")
        for handler in root.handlers:
            handler.flush()
        with open(settings.logfile) as f:
            assert "zato.test: hello from the entry test" in f.read()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in before:
            root.addHandler(handler)


def in_child(parent: int) -> int:
    """parent_gone(parent) in a forked child (it arms the parent-death signal: not in pytest)."""
    pid = os.fork()
    if pid == 0:
        os._exit(10 + parent_gone(parent))
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) - 10


def test_a_child_tells_whether_its_parent_is_the_one_it_expects():
    assert in_child(os.getpid()) == 0  # alive, and the death signal is armed
    assert in_child(os.getpid() + 1_000_000) == 1  # another one: gone before the signal was armed


# -- settings handed down ------------------------------------------------------------------
def test_server_settings_survive_the_trip_exactly(server_dir):
    settings = load_server_settings(server_dir)
    assert settings.redis.sentinels == (("h1", 26379), ("h2", 26380))
    assert transfer.loads(ServerSettings, transfer.dumps(settings)) == settings


def test_what_a_child_must_not_hold_is_left_out(server_dir):
    settings = load_server_settings(server_dir)
    text = transfer.dumps(transfer.without_secrets(settings))
    for secret in (settings.cluster_secret, settings.admin_password, settings.invoke_password):
        assert secret and secret not in text
    back = transfer.loads(ServerSettings, text)
    assert back == dataclasses.replace(settings, cluster_secret="", admin_password="", invoke_password="")
    lb = LBSettings("/lb", "c1", "127.0.0.1", 11223, RedisSettings(), "admin", "stats-pw", cluster_secret="x")
    assert transfer.without_secrets(lb).cluster_secret == "" and transfer.without_secrets(lb).stats_password


@pytest.mark.parametrize(
    "text",
    ["not json", "[1]", json.dumps({"path": "/x", "no_such_field": 1}), json.dumps({"redis": {"x": 2}})],
)
def test_anything_else_is_a_config_error(text):
    with pytest.raises(ConfigError, match="parent process"):
        transfer.loads(ServerSettings, text)


def test_a_connector_takes_the_supervisors_settings_and_keys_and_clears_them(server_dir, monkeypatch):
    settings = load_server_settings(server_dir)
    members = member_key(settings.cluster_secret, settings.cluster)
    monkeypatch.setenv(SETTINGS_ENV, transfer.dumps(transfer.without_secrets(settings)))
    monkeypatch.setenv(MEMBERS_KEY_ENV, members.hex())
    monkeypatch.setenv("ZATO_INVOKE_KEY", "ab" * 32)
    monkeypatch.setenv(OUTGOING_KEY_ENV, "cd" * 32)
    os.remove(os.path.join(server_dir, "config", "server.conf"))  # not read
    got, invoke, members_got, out = connector_run.given_settings(server_dir, 3)
    assert got.name == "server1" and got.cluster_secret == "" and got.odb_url == settings.odb_url
    assert (invoke, members_got, out) == (bytes.fromhex("ab" * 32), members, bytes.fromhex("cd" * 32))
    for name in (SETTINGS_ENV, MEMBERS_KEY_ENV, "ZATO_INVOKE_KEY", OUTGOING_KEY_ENV):
        assert name not in os.environ


def test_a_connector_run_by_hand_reads_server_conf_and_holds_no_secret(server_dir, monkeypatch):
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    settings, invoke, members, out = connector_run.given_settings(server_dir, 3)
    assert settings.cluster_secret == "" and settings.admin_password == "" and invoke and members
    secret = load_server_settings(server_dir)
    assert out == outgoing_key(secret.cluster_secret, secret.cluster)  # derived, the secret not kept


def test_the_zygote_takes_its_settings_from_the_supervisors_first_message(server_dir):
    import socket

    settings = transfer.without_secrets(load_server_settings(server_dir))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        ours.send(json.dumps({"op": "settings", "settings": transfer.to_dict(settings)}).encode())
        assert receive_settings(theirs) == settings
        ours.send(b'{"op": "spawn"}')
        with pytest.raises(ZatoError, match="not its settings"):
            receive_settings(theirs)
        ours.close()
        assert receive_settings(theirs) is None  # the supervisor went away first
