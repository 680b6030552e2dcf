"""zato.service.user_config: Zato's `self.config` from the server's *.ini / *.conf files (real
files in a temp folder, a hand-moved clock), and [main] user_conf_dir in server.conf."""

from __future__ import annotations

import copy
import logging
import os

import pytest

from zato.service import Service
from zato.service.store import ServiceStore
from zato.service.user_config import RECHECK, UserConfig

AIRPORTS = """\
# Zato 4.1's example, and a password that must never reach a log
[api]
base_url = https://api.airport-ops.example.com
timeout = 30
token = s3cret-token
greeting = "Hello, world"
[terminals]
domestic = T1
codes = A, B, C
[[gate_prefixes]]
T1 = A
"""


class Clock:
    def __init__(self):
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "user-conf"
    path.mkdir()
    (path / "airports.ini").write_text(AIRPORTS)
    return path


def write(path, text: str) -> None:
    """Write and move the mtime on, as a later edit would (some filesystems keep whole seconds)."""
    path.write_text(text)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_a_file_is_read_as_zato_reads_it(folder):
    config = UserConfig([str(folder)]).current()
    assert config.airports.api.base_url == "https://api.airport-ops.example.com"
    assert config.airports.api.timeout == "30"  # text, as configobj gives it
    assert config.airports.api.greeting == "Hello, world"  # quoted: its comma stays
    assert config.airports.terminals.codes == ["A", "B", "C"]
    assert config.airports.terminals.gate_prefixes.T1 == "A"  # [[nested]]
    assert config["airports"]["api"]["timeout"] == "30"
    assert config.user.airports.api.timeout == "30"  # Zato 3.2's self.config.user.NAME
    assert dict(config.airports.terminals.gate_prefixes) == {"T1": "A"}


def test_conf_suffix_is_read_and_other_files_are_not(folder):
    (folder / "crm.conf").write_text("[db]\nname = crm\n")
    (folder / "notes.txt").write_text("[x]\ny = 1\n")
    (folder / ".hidden.ini").write_text("[x]\ny = 1\n")
    (folder / "sub.ini").mkdir()
    config = UserConfig([str(folder)]).current()
    assert sorted(config) == ["airports", "crm"]
    assert config.crm.db.name == "crm"


def test_a_file_called_user_is_itself_not_the_alias(folder):
    (folder / "user.ini").write_text("[a]\nb = c\n")
    config = UserConfig([str(folder)]).current()
    assert config.user.a.b == "c"
    with pytest.raises(AttributeError):
        _ = config.user.airports


def test_a_later_folder_wins(folder, tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "airports.ini").write_text("[api]\ntimeout = 5\n")
    assert UserConfig([str(folder), str(own)]).current().airports.api.timeout == "5"
    assert UserConfig([str(own), str(folder)]).current().airports.api.timeout == "30"


def test_what_is_missing_is_named(folder):
    config = UserConfig([str(folder)]).current()
    with pytest.raises(AttributeError, match=r"user config airports.api has no 'timout' \(it has: base_url"):
        _ = config.airports.api.timout
    with pytest.raises(KeyError, match="airports.terminals has no 'intl'"):
        _ = config.airports.terminals["intl"]
    with pytest.raises(
        AttributeError, match=r"no user config file crm.ini or crm.conf \(there are: airports\)"
    ):
        _ = config.crm
    assert config.airports.api.get("retries", "3") == "3"
    assert "crm" not in config


def test_services_cannot_change_what_others_read(folder):
    config = UserConfig([str(folder)]).current()
    api = config.airports.api
    for change in (
        lambda: setattr(api, "timeout", "1"),
        lambda: api.__setitem__("timeout", "1"),
        lambda: api.update(timeout="1"),
        lambda: api.pop("timeout"),
        lambda: api.clear(),
        lambda: delattr(api, "timeout"),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert config.airports.api.timeout == "30"
    mine = copy.deepcopy(config.airports)  # a copy is the service's own
    mine["api"]["timeout"] = "1"
    assert config.airports.api.timeout == "30"


def test_an_edit_applies_at_the_next_look_and_a_removed_file_is_gone(folder):
    clock = Clock()
    user = UserConfig([str(folder)], clock=clock)
    write(folder / "airports.ini", AIRPORTS.replace("timeout = 30", "timeout = 45"))
    assert user.current().airports.api.timeout == "30"  # looked less than a second ago
    clock.now += RECHECK
    assert user.current().airports.api.timeout == "45"
    (folder / "crm.ini").write_text("[db]\nname = crm\n")
    os.remove(folder / "airports.ini")
    clock.now += RECHECK
    assert sorted(user.current()) == ["crm"]


def test_a_broken_edit_keeps_what_was_read_and_says_where_not_what(folder, caplog):
    clock = Clock()
    user = UserConfig([str(folder)], clock=clock)
    write(folder / "airports.ini", "[api]\ntimeout = 45\nnot a line s3cret-token\n")
    clock.now += RECHECK
    with caplog.at_level(logging.ERROR, logger="zato.service.user_config"):
        assert user.current().airports.api.timeout == "30"
        clock.now += RECHECK
        assert user.current().airports.api.timeout == "30"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # said once, not at every look
    assert "airports" in errors[0] and "line 3" in errors[0] and "keeping what was read" in errors[0]
    assert "s3cret" not in caplog.text
    write(folder / "airports.ini", "[api]\ntimeout = 45\n")
    clock.now += RECHECK
    assert user.current().airports.api.timeout == "45"


def test_a_new_file_that_does_not_parse_is_left_out(folder, caplog):
    (folder / "dup.ini").write_text("[a]\nx = 1\nx = 2\n")
    (folder / "latin.ini").write_bytes(b"[a]\nx = caf\xe9\n")
    deep = "".join("[" * i + f"s{i}" + "]" * i + "\n" for i in range(1, 1500))  # 1,499 levels
    (folder / "deep.ini").write_text(deep)
    with caplog.at_level(logging.ERROR, logger="zato.service.user_config"):
        config = UserConfig([str(folder)]).current()
    assert sorted(config) == ["airports"]
    assert "deep: cannot read" in caplog.text and "sections nested too deeply" in caplog.text
    assert "dup: cannot read" in caplog.text and "line 3: a section or a key given twice" in caplog.text
    assert "latin: cannot read" in caplog.text and "not UTF-8 text" in caplog.text


def test_no_folder_is_no_user_config_and_no_error(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        config = UserConfig([str(tmp_path / "none")]).current()
    assert dict(config) == {}
    assert caplog.records == []


class ReadsConfig(Service):
    name = "reads.config"

    def handle(self):
        self.response.payload = {"timeout": self.config.airports.api.timeout}


def test_a_service_reads_it_as_self_config(folder):
    store = ServiceStore(config=UserConfig([str(folder)]))
    store.add(ReadsConfig)
    assert store.invoke("reads.config").payload == {"timeout": "30"}


def test_a_folder_that_cannot_be_read_is_said_once(folder, tmp_path, caplog):
    not_a_folder = tmp_path / "file-not-folder"
    not_a_folder.write_text("")
    clock = Clock()
    with caplog.at_level(logging.ERROR, logger="zato.service.user_config"):
        user = UserConfig([str(not_a_folder), str(folder)], clock=clock)
        for _ in range(3):
            clock.now += RECHECK
            assert user.current().airports.api.timeout == "30"  # the other folder still counts
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"user config: cannot read the folder {not_a_folder}: Not a directory"]


def test_zato_info_says_which_files_a_server_reads_and_which_do_not_parse(folder, tmp_path):
    from zato.config.component import read_component
    from zato.lifecycle.control import info
    from zato.lifecycle.layout import ServerSpec, create_server_dir

    spec = ServerSpec("server1", "c1", f"sqlite:///{tmp_path}/odb.db", user_conf_dir=str(folder))
    path = create_server_dir(str(tmp_path / "server1"), spec)
    (folder / "broken.conf").write_text("[a]\nb\n")
    assert info(read_component(path))["user-conf"] == (
        f"{folder}: airports.ini, broken.conf (cannot be read: line 2: neither a [section], "
        "a key = value, nor a # comment)"
    )


def test_a_file_removed_while_the_folder_is_read_is_simply_gone(folder, monkeypatch):
    real = os.scandir

    def listed_then_removed(path):  # the folder is listed, then the file goes before its stat
        entries = list(real(path))
        os.remove(folder / "airports.ini")
        return iter(entries)

    monkeypatch.setattr(os, "scandir", listed_then_removed)
    assert dict(UserConfig([str(folder)]).current()) == {}


def test_zatos_user_config_labels_follow_their_files(tmp_path, caplog):
    """server.conf's [user_config] LABEL = path: self.user_config.LABEL.FILE...; an edit applies
    at the next look, a broken one keeps what was read (said once, without the line's text), and
    a file that is gone or never was is named when the label is used."""
    my1 = tmp_path / "my1.ini"
    my1.write_text("[hello]\na_string = My string\na_list = sample,list\n")
    clock = Clock()
    config = UserConfig(labelled=[("data1", str(my1)), ("data2", str(tmp_path / "none.ini"))], clock=clock)
    labels = config.labelled()
    assert labels.data1.my1.hello.a_list == ["sample", "list"]
    with pytest.raises(AttributeError, match=r"self.user_config.data2: its file .*none.ini cannot be read"):
        getattr(labels, "data2")  # noqa: B009
    with pytest.raises(AttributeError, match=r"no such label \(it gives: data1, data2\)"):
        getattr(labels, "data3")  # noqa: B009
    with pytest.raises(KeyError):
        labels["data3"]
    write(my1, "[hello]\na_string = s3cret edited\n")
    clock.now += RECHECK
    assert config.labelled().data1.my1.hello.a_string == "s3cret edited"
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            write(my1, "[hello]\nno equals sign s3cret\n")
            clock.now += RECHECK
            assert config.labelled().data1.my1.hello.a_string == "s3cret edited"
    said = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and "label data1" in r.getMessage()
    ]
    assert len(said) == 1 and "keeping what was read of it before" in said[0], said
    assert "s3cret" not in caplog.text
    my1.unlink()
    clock.now += RECHECK
    with pytest.raises(AttributeError, match="No such file or directory"):
        getattr(config.labelled(), "data1")  # noqa: B009
