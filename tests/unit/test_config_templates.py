"""Config files are rendered from the commented templates in etc/: comments stay, values are
filled in, optional sections are uncommented when given, what the template lacks is added."""

from __future__ import annotations

import configparser

from zato.config.settings import load_server_settings
from zato.lifecycle.layout import ServerSpec, create_server_dir
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
        "main": {"name": "x"}, "logging": {"level": "INFO"}, "tls": {"cert": "lb.pem"}, "lease": {"ttl": "2"}
    }


def test_a_created_server_conf_is_the_commented_template_and_loads(tmp_path):
    path = create_server_dir(str(tmp_path / "s1"), ServerSpec("s1", "c1", "sqlite:////tmp/x.db", port=17099))
    with open(f"{path}/config/server.conf") as f:
        text = f.read()
    assert "# [lease]" in text and "# renew_deadline = 1.0" in text  # the documented defaults
    s = load_server_settings(path)
    assert (s.name, s.cluster, s.port, s.odb_url) == ("s1", "c1", 17099, "sqlite:////tmp/x.db")
    assert "CHANGE-ME" not in text  # every secret was generated
