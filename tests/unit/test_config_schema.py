"""Unknown sections and keys in server.conf, lb.conf and dashboard.conf are refused in one
line naming file, section and key, with the known one a typo is closest to; [gunicorn] stays
gunicorn's to check, and a bad [gunicorn] value is one line too."""

from __future__ import annotations

import os

import pytest

from zato.common.errors import ConfigError
from zato.config.settings import (
    DASHBOARD_SCHEMA,
    LB_SCHEMA,
    SERVER_SCHEMA,
    load_dashboard_settings,
    load_lb_settings,
    load_server_settings,
    unknown_setting,
)
from zato.lifecycle.layout import ServerSpec, create_dashboard_dir, create_lb_dir, create_server_dir
from zato.server.app import check_gunicorn_settings


@pytest.fixture
def server_dir(tmp_path):
    spec = ServerSpec("server1", "c1", f"sqlite:///{tmp_path}/odb.db", port=17099, workers=1)
    return create_server_dir(str(tmp_path / "server1"), spec)


def append(path: str, text: str) -> str:
    """`text` ("[section]\nkey = value\n") added to the file: under its section if it has one."""
    header, _, rest = text.strip().partition("\n")
    with open(path) as f:
        lines = f.read().splitlines()
    if header in lines:
        lines.insert(lines.index(header) + 1, rest)
    else:
        lines += ["", header, rest]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def server_conf(server_dir: str, text: str) -> str:
    return append(os.path.join(server_dir, "config", "server.conf"), text)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[main]\nprot = 42011\n", "[main] prot is not a setting of server.conf (did you mean 'port'?)"),
        ("[limit]\nmax_body = 100\n", "[limit] is not a section of server.conf (did you mean [limits]?)"),
        (
            "[limits]\nmax_bdy = 100\n",
            "[limits] max_bdy is not a setting of server.conf (did you mean 'max_body'?)",
        ),
        (
            "[main]\ncluster_secret = x\n",
            "[main] cluster_secret is not a setting of server.conf (it belongs in [auth])",
        ),
        (
            "[DEFAULT]\nlevle = DEBUG\n",
            "[DEFAULT] levle is not a setting of server.conf (did you mean 'level'?)",
        ),
    ],
)
def test_an_unknown_server_setting_is_refused_naming_file_section_and_key(server_dir, text, said):
    conf = server_conf(server_dir, "\n" + text)
    with pytest.raises(ConfigError) as e:
        load_server_settings(server_dir)
    assert str(e.value) == f"{conf}: {said}"


def test_gunicorn_keys_stay_gunicorns_to_check(server_dir):
    server_conf(server_dir, "\n[gunicorn]\nkeepalive = 7\n")
    check_gunicorn_settings(load_server_settings(server_dir))  # no error: a gunicorn setting
    server_conf(server_dir, "[gunicorn]\nkeepaliv = 7\n")
    with pytest.raises(
        ConfigError, match=r"\[gunicorn\] keepaliv is not a gunicorn setting \(did you mean 'keepalive'\?\)"
    ):
        check_gunicorn_settings(load_server_settings(server_dir))


def test_a_bad_gunicorn_value_is_one_line_naming_key_and_value(server_dir):
    conf = server_conf(server_dir, "\n[gunicorn]\ntimeout = abc\n")
    with pytest.raises(ConfigError) as e:
        check_gunicorn_settings(load_server_settings(server_dir))
    line = str(e.value)
    assert line.startswith(f"{conf}: [gunicorn] timeout: 'abc' is not valid") and "\n" not in line, line


def test_lb_and_dashboard_confs_refuse_typos(tmp_path, server_dir):
    lb_dir = create_lb_dir(str(tmp_path / "lb"), "c1", port=11299, cluster_secret="s" * 20)
    conf = append(os.path.join(lb_dir, "config", "lb.conf"), "\n[haproxy]\ntimeout_clinet_ms = 5\n")
    with pytest.raises(ConfigError) as e:
        load_lb_settings(lb_dir)
    assert str(e.value) == (
        f"{conf}: [haproxy] timeout_clinet_ms is not a setting of lb.conf (did you mean 'timeout_client_ms'?)"
    )
    dash = create_dashboard_dir(str(tmp_path / "dash"), load_server_settings(server_dir), "", 8199)
    conf = append(os.path.join(dash, "config", "dashboard.conf"), "\n[main]\nsesion_minutes = 5\n")
    with pytest.raises(
        ConfigError,
        match=r"\[main\] sesion_minutes is not a setting of dashboard.conf "
        r"\(did you mean 'session_minutes'\?\)",
    ):
        load_dashboard_settings(dash)


def test_every_key_the_templates_document_is_known():
    """etc/*.conf document every setting (commented ones too): each is in its file's schema,
    so the templates and quickstart's files always load."""
    import re

    from zato.lifecycle.templates import template

    for name, schema in (
        ("server.conf", SERVER_SCHEMA),
        ("lb.conf", LB_SCHEMA),
        ("dashboard.conf", DASHBOARD_SCHEMA),
    ):
        section = None
        for line in template(name).splitlines():
            header = re.match(r"^\s*(#\s*)?\[([^\]]+)\]", line)
            if header:
                section = header.group(2)
                assert section in schema, (name, section)
                continue
            key = re.match(r"^\s*(#\s*)?([a-z_]+)\s*=", line)
            if key and schema[section] is not None:
                assert key.group(2) in schema[section], (name, section, key.group(2))


def test_unknown_setting_without_a_close_key_lists_the_known_ones():
    said = unknown_setting("/x/lb.conf", LB_SCHEMA, {"stats": ["colour"]})
    known = "(known: max_failures, password, username)"
    assert said == f"/x/lb.conf: [stats] colour is not a setting of lb.conf {known}"
    assert unknown_setting("/x/lb.conf", LB_SCHEMA, {"main": ["host", "port"]}) is None
