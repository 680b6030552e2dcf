"""server.conf as written by quickstart loads; bad values name file, section and key."""

from __future__ import annotations

import re

import pytest

from zato.common.errors import ConfigError
from zato.config.settings import load_server_settings, server_drain
from zato.lifecycle.layout import ServerSpec, create_server_dir
from zato.server.app import ZatoApplication, gunicorn_options


@pytest.fixture
def server_dir(tmp_path):
    spec = ServerSpec("server1", "c1", f"sqlite:///{tmp_path}/odb.db", port=17099, workers=3)
    return create_server_dir(str(tmp_path / "server1"), spec)


def edit(path: str, old: str, new: str) -> None:
    conf = f"{path}/config/server.conf"
    text = open(conf).read()
    assert old in text
    open(conf, "w").write(text.replace(old, new))


def test_written_config_loads_with_defaults(server_dir):
    s = load_server_settings(server_dir)
    assert (s.name, s.cluster, s.port, s.workers, s.drain_seconds) == ("server1", "c1", 17099, 3, 1.0)
    assert len(s.admin_password) >= 20 and len(s.cluster_secret) >= 20
    assert s.admin_password not in repr(s) and s.cluster_secret not in repr(s)


def test_gunicorn_options_follow_server_conf(server_dir):
    with open(f"{server_dir}/config/server.conf", "a") as f:
        f.write("\n[gunicorn]\nkeepalive = 7\n")
    s = load_server_settings(server_dir)
    opts = gunicorn_options(s)
    assert opts["bind"] == ["127.0.0.1:17099"] and opts["workers"] == 3
    assert opts["worker_class"] == "gevent" and opts["pidfile"] == s.pidfile
    assert ZatoApplication(s).cfg.keepalive == 7


def test_no_client_sets_the_environ_through_forwarding_headers(server_dir):
    """The LB passes on its clients' headers: gunicorn trusts no address with them."""
    cfg = ZatoApplication(load_server_settings(server_dir)).cfg
    assert cfg.forwarded_allow_ips == [] and cfg.forwarder_headers == []


def test_unknown_gunicorn_setting_is_a_config_error(server_dir):
    with open(f"{server_dir}/config/server.conf", "a") as f:
        f.write("\n[gunicorn]\nworkerz = 2\n")
    with pytest.raises(ConfigError, match=r"\[gunicorn\] workerz is not a gunicorn setting"):
        ZatoApplication(load_server_settings(server_dir))


def test_bad_drain_seconds_is_named(server_dir):
    edit(server_dir, "drain_seconds = 1.0", "drain_seconds = soon")
    with pytest.raises(ConfigError, match=r"\[main\] drain_seconds: 'soon' is not a number"):
        load_server_settings(server_dir)


@pytest.mark.parametrize("key", ["drain_seconds", "membership ttl"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "Infinity"])
def test_a_number_setting_that_is_not_finite_is_named(server_dir, key, bad):
    # float() takes them: before, a drain of nan or a membership ttl of inf went on into the server
    if key == "drain_seconds":
        edit(server_dir, "drain_seconds = 1.0", f"drain_seconds = {bad}")
    else:
        key = "ttl"
        with open(f"{server_dir}/config/server.conf", "a") as f:
            f.write(f"\n[membership]\nttl = {bad}\n")
    with pytest.raises(ConfigError, match=rf"\] {key}: '{bad}' is not a finite number"):
        load_server_settings(server_dir)


def test_a_membership_ttl_readers_would_not_believe_is_refused(server_dir):
    with open(f"{server_dir}/config/server.conf", "a") as f:
        f.write("\n[membership]\nttl = 3601\n")
    with pytest.raises(ConfigError, match=r"\[membership\] ttl: 3601 must be more than 0 and at most 3600"):
        load_server_settings(server_dir)


def test_unloadable_worker_class_is_one_line(server_dir):
    with open(f"{server_dir}/config/server.conf", "a") as f:
        f.write("\n[gunicorn]\nworker_class = no.such.Worker\n")
    with pytest.raises(ConfigError) as e:
        ZatoApplication(load_server_settings(server_dir))
    assert "no.such.Worker" in str(e.value) and "\n" not in str(e.value)


def test_a_short_invoke_password_is_refused_and_an_empty_one_turns_the_endpoints_off(server_dir):
    conf = f"{server_dir}/config/server.conf"
    text = open(conf).read()
    line = next(x for x in text.splitlines() if x.startswith("invoke_password"))
    open(conf, "w").write(text.replace(line, "invoke_password = abc"))
    with pytest.raises(ConfigError, match=r"\[auth\] invoke_password is shorter than 8"):
        load_server_settings(server_dir)
    open(conf, "w").write(text.replace(line, "invoke_password ="))
    assert load_server_settings(server_dir).invoke_password == ""


def test_the_dashboard_refuses_an_empty_admin_password(server_dir, tmp_path):
    from zato.config.settings import load_dashboard_settings
    from zato.lifecycle.layout import create_dashboard_dir

    server = load_server_settings(server_dir)
    path = create_dashboard_dir(str(tmp_path / "dashboard"), server)
    made = load_dashboard_settings(path)
    assert len(made.admin_password) >= 8 and made.cluster_secret == server.cluster_secret  # verifies members
    conf = f"{path}/config/dashboard.conf"
    text = open(conf).read()
    line = next(x for x in text.splitlines() if x.startswith("admin_password"))
    open(conf, "w").write(text.replace(line, "admin_password ="))
    with pytest.raises(ConfigError, match=r"\[auth\] admin_password is empty"):
        load_dashboard_settings(path)


def test_user_conf_dir_names_the_folders_of_self_config(server_dir):
    import os
    import stat

    own = os.path.join(server_dir, "config", "user-conf")
    assert load_server_settings(server_dir).user_conf_dirs == (own,)
    assert stat.S_IMODE(os.stat(own).st_mode) == 0o700  # its files may hold passwords too
    edit(
        server_dir,
        "drain_seconds = 1.0",
        "drain_seconds = 1.0\nuser_conf_dir = ../shared-conf, /etc/zato-conf",
    )
    parent = os.path.dirname(server_dir)
    assert load_server_settings(server_dir).user_conf_dirs == (
        os.path.join(parent, "shared-conf"),
        "/etc/zato-conf",
    )
    edit(server_dir, "user_conf_dir = ../shared-conf, /etc/zato-conf", "user_conf_dir = ,")
    with pytest.raises(ConfigError, match=r"\[main\] user_conf_dir: give at least one folder"):
        load_server_settings(server_dir)


def test_gunicorn_keys_that_override_server_conf_are_named_unless_they_agree(server_dir):
    from zato.server.app import overridden

    with open(f"{server_dir}/config/server.conf", "a") as f:
        f.write("\n[gunicorn]\ntimeout = 60\nworkers = 3\nloglevel = debug\nbind = 127.0.0.1:17099\n")
    s = load_server_settings(server_dir)
    assert overridden(s) == [f"{s.config_file}: [gunicorn] loglevel = debug overrides [logging] level (info)"]


def test_client_warning_interval_sets_how_often_a_worker_warns_of_what_clients_cause(server_dir):
    """[logging] client_warning_interval (seconds; 60 by default, as before): how often a
    worker says gunicorn's 'Invalid request', a malformed body or a client gone mid-body.
    Before, the key was refused (not a setting of server.conf) and the interval was fixed."""
    default = ZatoApplication(load_server_settings(server_dir))
    edit(server_dir, "level = INFO", "level = INFO\nclient_warning_interval = 2.5")
    s = load_server_settings(server_dir)
    assert s.client_warning_interval == 2.5
    assert default.cfg.logger_class(default.cfg).invalid_said.how_often == "once a minute"
    app = ZatoApplication(s)
    assert app.cfg.logger_class(app.cfg).invalid_said.how_often == "once every 2.5 s"
    for bad, said in (
        ("0", "0 must be more than 0 and at most 86400 (seconds)"),
        ("-1", "-1 must be more than 0 and at most 86400 (seconds)"),
        ("soon", "'soon' is not a number"),
        ("nan", "'nan' is not a finite number"),
        ("86401", "86401 must be more than 0 and at most 86400 (seconds)"),
    ):
        edit(
            server_dir,
            f"client_warning_interval = {s.client_warning_interval:g}",
            f"client_warning_interval = {bad}",
        )
        with pytest.raises(
            ConfigError, match=rf"server.conf: \[logging\] client_warning_interval: {re.escape(said)}"
        ):
            load_server_settings(server_dir)
        edit(server_dir, f"client_warning_interval = {bad}", "client_warning_interval = 2.5")


def test_zato_stop_reads_the_drain_leniently(server_dir, tmp_path):
    """`zato stop` waits a server's drain (and 30 s more): read from server.conf even when the
    rest of it no longer loads; None (30 s alone) when it cannot be read."""
    assert server_drain(server_dir) == 1.0
    edit(server_dir, "drain_seconds = 1.0\n", "drain_seconds = 45\nprot = 1\n")
    with pytest.raises(ConfigError):
        load_server_settings(server_dir)  # a typo: a server would not start so, but one may run
    assert server_drain(server_dir) == 45.0
    edit(server_dir, "drain_seconds = 45\n", "drain_seconds = 1e12\n")
    assert server_drain(server_dir) is None
    assert server_drain(str(tmp_path / "gone")) is None


def test_zatos_user_config_stanza_gives_labels_and_their_files(server_dir):
    """Zato's server.conf [user_config] LABEL = path: a relative path is to the folder
    server.conf is in, a label keeps its case, an empty path is refused; `zato info` names each
    label's file and says which cannot be read."""
    import os

    from zato.config.component import read_component
    from zato.lifecycle.control import info

    config = os.path.join(server_dir, "config")
    with open(os.path.join(config, "my1.ini"), "w") as f:
        f.write("[hello]\na_string = My string\n")
    with open(os.path.join(config, "server.conf"), "a") as f:
        f.write("\n[user_config]\ndata1 = ./my1.ini\nOps = /nowhere/ops.ini\n")
    settings = load_server_settings(server_dir)
    assert settings.user_config_files == (
        ("data1", os.path.join(config, "my1.ini")),
        ("Ops", "/nowhere/ops.ini"),
    )
    assert info(read_component(server_dir))["user_config"] == (
        f"data1 = {config}/my1.ini, Ops = /nowhere/ops.ini (cannot be read: No such file or directory)"
    )
    edit(server_dir, "Ops = /nowhere/ops.ini", "Ops =")
    with pytest.raises(ConfigError, match=r"\[user_config\] Ops: give the path of an .ini file"):
        load_server_settings(server_dir)


def test_metrics_credentials_are_optional_and_a_short_password_is_refused_unshown(server_dir):
    from zato.config.transfer import without_secrets

    s = load_server_settings(server_dir)
    assert (s.metrics_username, s.metrics_password) == ("metrics", "")  # as written: /metrics open
    conf = f"{server_dir}/config/server.conf"
    text = open(conf).read()
    open(conf, "w").write(text + "\n[metrics]\nusername = prom\npassword = scrape-pw-123\n")
    s = load_server_settings(server_dir)
    assert (s.metrics_username, s.metrics_password) == ("prom", "scrape-pw-123")
    assert "scrape-pw-123" not in repr(s)
    assert without_secrets(s).metrics_password == ""  # never handed to a connector or the zygote
    open(conf, "w").write(text + "\n[metrics]\npassword = pw-7chr\n")
    with pytest.raises(ConfigError, match=r"\[metrics\] password is shorter than 8 characters") as e:
        load_server_settings(server_dir)
    assert "pw-7chr" not in str(e.value)
    open(conf, "w").write(text + "\n[metrics]\nusername = a:b\npassword = scrape-pw-123\n")
    with pytest.raises(ConfigError, match=r"\[metrics\] username: 'a:b' must be a name without ':'"):
        load_server_settings(server_dir)
    open(conf, "w").write(text + "\n[metrics]\npasword = scrape-pw-123\n")
    with pytest.raises(ConfigError, match=r"\[metrics\] pasword is not a setting .*did you mean 'password'"):
        load_server_settings(server_dir)


def test_a_dashboard_made_for_a_server_sends_its_metrics_credentials(tmp_path):
    from zato.config.settings import load_dashboard_settings
    from zato.lifecycle.layout import create_dashboard_dir

    spec = ServerSpec(
        "s1", "c1", f"sqlite:///{tmp_path}/odb.db", metrics_username="prom", metrics_password="pw-1234567"
    )
    server = load_server_settings(create_server_dir(str(tmp_path / "s1"), spec))
    assert (server.metrics_username, server.metrics_password) == ("prom", "pw-1234567")
    dashboard = load_dashboard_settings(create_dashboard_dir(str(tmp_path / "d"), server))
    assert (dashboard.metrics_username, dashboard.metrics_password) == ("prom", "pw-1234567")
    assert "pw-1234567" not in repr(dashboard)


@pytest.mark.parametrize(
    ("host", "password", "said"),
    [
        ("0.0.0.0", "", "port 17099 at any address of this host"),
        ("10.1.2.3", "", "10.1.2.3:17099"),
        ("10.1.2.3", "scrape-pw-123", None),
        ("127.0.0.1", "", None),
        ("::1", "", None),
    ],
)
def test_a_server_bound_beyond_loopback_without_a_metrics_password_is_told(server_dir, host, password, said):
    import dataclasses

    from zato.server.metrics import open_warning

    s = dataclasses.replace(load_server_settings(server_dir), host=host, metrics_password=password)
    line = open_warning(s)
    if said is None:
        assert line is None
    else:
        assert line is not None and f"/metrics of server server1 is open to anyone who reaches {said}" in line
        assert f"set [metrics] password (and username, default metrics) in {s.config_file}" in line
