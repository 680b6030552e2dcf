"""zato.common.log.redact: a URL's password never reaches a log line nor a command's output,
whatever form the URL gives it in (tests/integration/test_secrets_shown.py: on a real cluster)."""

from __future__ import annotations

import pytest

from zato.common.log import redact, redact_url


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:pw-alone@127.0.0.1:6379/0", "redis://:******@127.0.0.1:6379/0"),  # before: shown
        ("rediss://:pw-alone@h:6380", "rediss://:******@h:6380"),  # before: shown
        ("redis://user:p@ss@h/0", "redis://user:******@h/0"),  # before: "ss@h/0" was left
        ("postgresql://zato:p%40ss@db/zato", "postgresql://zato:******@db/zato"),
        ("amqp://guest:guest@h:5672/%2F", "amqp://guest:******@h:5672/%2F"),
        ("a redis://:x1@h/0 and redis://u:y2@h2/0", "a redis://:******@h/0 and redis://u:******@h2/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user@h:1/0", "redis://user@h:1/0"),
        ("http://h:8080/a@b", "http://h:8080/a@b"),  # an "@" in a path is no password
    ],
)
def test_a_urls_password_is_hidden_in_every_form(text, shown):
    assert redact(text) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("user:s3cret@db.example.com/zato", "******@db.example.com/zato"),  # before: shown whole
        ("postgresql//zato:s3cret@db/zato", "******@db/zato"),  # before: shown whole
        ("postgresql://zato:s3cret@db/zato", "postgresql://zato:******@db/zato"),
        ("nonsense", "nonsense"),
        ("user@host/db", "user@host/db"),  # no password to hide
    ],
)
def test_a_url_without_its_scheme_still_hides_its_password(url, shown):
    assert redact_url(url) == shown
