"""One rule for a service's name (zato.common.service_name): what deploy accepts, a channel
accepts; what nothing could invoke is refused with the reason."""

from __future__ import annotations

import pytest

from zato.common.errors import ConfigError, DeployError
from zato.common.service_name import why_not
from zato.odb.api import make_channel
from zato.service.store import check_usable_name


@pytest.mark.parametrize(
    "name", ["ex.żółw", "ex-uni.żółw", "billing:invoice", "-odd", "名前.取得", "a" * 200]
)
def test_a_name_deploy_accepts_is_one_a_channel_accepts(name):
    assert why_not(name) is None
    check_usable_name("m", name)
    assert make_channel("ch", "/ch", name).service == name  # before: "is not a service name"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("has space", "it holds whitespace"),
        ("nb\u00a0space", "it holds whitespace"),
        ("line\nbreak", "it holds whitespace"),
        ("nul\0", "it holds a control or invisible character"),
        ("zero\u200bwidth", "it holds a control or invisible character"),
        ("a/b", "it holds a /"),
        ("a" * 201, "it is longer than 200 characters"),
        ("", "it is empty"),
    ],
)
def test_a_name_nothing_could_invoke_is_refused_in_one_line(name, why):
    assert why_not(name) == why
    with pytest.raises(DeployError) as e:
        check_usable_name("m", name)
    assert f"module m: service name {name!r} cannot be used: {why}" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError):
        make_channel("ch", "/ch", name)
