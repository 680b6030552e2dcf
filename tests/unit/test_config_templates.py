"""Config files are rendered from the commented templates in etc/: comments stay, values are
filled in, optional sections are uncommented when given, what the template lacks is added."""

from __future__ import annotations

import configparser
import functools
import os
import re

import pytest

from zato.common import tls
from zato.common.errors import ConfigError
from zato.config.settings import load_dashboard_settings, load_lb_settings, load_server_settings
from zato.lifecycle.layout import ServerSpec, create_dashboard_dir, create_lb_dir, create_server_dir
from zato.lifecycle.templates import render_ini

TEMPLATE = """# a file
[main]
# the name
name = x
# host = 127.0.0.1

[logging]
level = INFO

# optional
# [tls]
# cert = a.pem
"""


def parse(text: str) -> dict:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(text)
    return {s: dict(cp[s]) for s in cp.sections()}


def test_values_replace_the_templates_and_comments_stay():
    out = render_ini(TEMPLATE, {"main": {"name": "s1", "host": "0.0.0.0", "port": 17010}})
    main = {"name": "s1", "host": "0.0.0.0", "port": "17010"}
    assert parse(out) == {"main": main, "logging": {"level": "INFO"}}
    assert "# the name" in out and "# a file" in out and "# [tls]" in out


def test_an_optional_section_is_uncommented_and_an_unknown_one_added():
    out = render_ini(TEMPLATE, {"tls": {"cert": "lb.pem"}, "lease": {"ttl": 2}})
    assert parse(out) == {
        "main": {"name": "x"},
        "logging": {"level": "INFO"},
        "tls": {"cert": "lb.pem"},
        "lease": {"ttl": "2"},
    }


def test_a_created_server_conf_is_the_commented_template_and_loads(tmp_path):
    path = create_server_dir(str(tmp_path / "s1"), ServerSpec("s1", "c1", "sqlite:////tmp/x.db", port=17099))
    with open(f"{path}/config/server.conf") as f:
        text = f.read()
    assert "# [lease]" in text and "# renew_deadline = 1.0" in text  # the documented defaults
    s = load_server_settings(path)
    assert (s.name, s.cluster, s.port, s.odb_url) == ("s1", "c1", 17099, "sqlite:////tmp/x.db")
    assert "CHANGE-ME" not in text  # every secret was generated


_COMMENTED = re.compile(r"^#\s*(\[[A-Za-z0-9_.-]+\]|[A-Za-z0-9_.-]+\s*=.*)$")


def uncomment_every_setting(path: str) -> list[str]:
    """What a user does to change a documented default: drop the "# " of every commented
    `key = value` line and `[section]` header. Returns the lines uncommented."""
    with open(path) as f:
        lines = f.read().splitlines()
    done = []
    for i, line in enumerate(lines):
        m = _COMMENTED.match(line)
        if m:
            lines[i] = m.group(1)
            done.append(m.group(1))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return done


def created(kind: str, tmp_path) -> tuple[str, str]:  # noqa: ANN001
    """(component directory, its config file) as `zato create ...` writes them."""
    spec = ServerSpec("s1", "c1", "sqlite:////tmp/x.db", port=17099)
    server = create_server_dir(str(tmp_path / "s1"), spec)
    if kind == "server":
        return server, f"{server}/config/server.conf"
    if kind == "lb":
        lb = create_lb_dir(str(tmp_path / "lb"), "c1")
        with open(f"{lb}/config/lb.pem", "w") as f:  # [tls] cert = lb.pem names a file
            f.write("not checked when loading\n")
        return lb, f"{lb}/config/lb.conf"
    dashboard = create_dashboard_dir(str(tmp_path / "d"), load_server_settings(server))
    return dashboard, f"{dashboard}/config/dashboard.conf"


LOADERS = {"server": load_server_settings, "lb": load_lb_settings, "dashboard": load_dashboard_settings}


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_every_commented_default_can_be_uncommented_as_it_is(kind, tmp_path):
    """A comment after a value is part of the value (configparser without inline comment
    prefixes, so that a password may hold '#'): the templates keep comments on lines of their
    own, and a created file with every documented default switched on still loads."""
    path, conf = created(kind, tmp_path)
    settings = uncomment_every_setting(conf)
    assert settings, "the template documents no defaults"
    assert [s for s in settings if "#" in s] == []
    loaded = LOADERS[kind](path)
    if kind == "server":
        assert (loaded.limits.max_body, loaded.lease.renew_deadline, loaded.announce_host) == (
            4194304,
            1.0,
            "10.0.0.5",
        )
        assert loaded.redis.sentinels == (("host1", 26379), ("host2", 26379))
    if kind == "lb":
        assert (loaded.check_inter_ms, loaded.edge.admin_through_lb, loaded.edge.admin_max_failures) == (
            300,
            True,
            10,
        )


def test_a_comment_after_a_number_is_named_in_the_error(tmp_path):
    path, conf = created("server", tmp_path)
    with open(conf, "a") as f:
        f.write("\n[limits]\nmax_body = 4194304   # bytes\n")
    with pytest.raises(ConfigError, match=r"'4194304   # bytes' is not a whole number \(a comment must be"):
        load_server_settings(path)


def test_a_dashboard_made_for_a_server_takes_its_tls_ca_file(tmp_path):
    """The private CA of TLS AMQP brokers (server.conf [tls] ca_file) reaches dashboard.conf, so
    its Replay parked verifies them as the connectors and the CLI do; a missing file is refused."""
    server, conf = created("server", tmp_path)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls.cert_pem(tls.new_ca("test CA").cert))
    with open(conf, "a") as f:
        f.write(f"\n[tls]\nca_file = {ca}\n")
    dashboard = create_dashboard_dir(str(tmp_path / "d"), load_server_settings(server))
    assert load_dashboard_settings(dashboard).tls_ca_file == str(ca)
    ca.unlink()
    with pytest.raises(ConfigError, match=rf"dashboard.conf: \[tls\] ca_file: '{ca}' is not a file"):
        load_dashboard_settings(dashboard)


@pytest.mark.parametrize("kind", ["server", "dashboard"])
@pytest.mark.parametrize("content", ["key", "text"])
def test_a_tls_ca_file_holding_no_ca_certificate_is_a_config_error(tmp_path, kind, content):
    """A [tls] ca_file that exists but holds no CA certificate (the key file given by mistake,
    some text) is one line at load, naming the file; before, the first TLS connection to a
    broker raised ssl.SSLError: a traceback in the CLI, bottle's 500 page in the dashboard."""
    server, conf = created("server", tmp_path)
    bad = tmp_path / "ca.pem"
    if content == "key":
        bad.write_bytes(tls.key_pem(tls.new_ca("test CA").key))
    else:
        bad.write_text("not a certificate\n")
    if kind == "server":
        with open(conf, "a") as f:
            f.write(f"\n[tls]\nca_file = {bad}\n")
        load = functools.partial(load_server_settings, server)
    else:
        dashboard = create_dashboard_dir(str(tmp_path / "d"), load_server_settings(server))
        with open(os.path.join(dashboard, "config", "dashboard.conf"), "a") as f:
            f.write(f"\n[tls]\nca_file = {bad}\n")
        load = functools.partial(load_dashboard_settings, dashboard)
    said = rf"\[tls\] ca_file: '{bad}' holds no CA certificate that can be read"
    with pytest.raises(ConfigError, match=said):
        load()
