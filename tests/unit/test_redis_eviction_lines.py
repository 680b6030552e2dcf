"""What is said of Redis's eviction policy (zato.coord.eviction): only a limit together with a
policy that evicts is a danger, and the line names what that policy may drop."""

from __future__ import annotations

import pytest

from zato.coord.eviction import ALLKEYS, SAFE, VOLATILE, Eviction, said, unchecked, warning

WHERE = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("policy", ALLKEYS)
def test_allkeys_policies_may_drop_queued_messages_and_the_epoch(policy):
    line = warning(Eviction(policy, 50 << 20), WHERE)
    assert line.startswith(f"Redis at {WHERE} has maxmemory-policy {policy} with maxmemory 50mb")
    assert "messages waiting to go out" in line and "fencing epoch" in line
    assert line.endswith("set maxmemory-policy noeviction (redis-cli CONFIG SET maxmemory-policy noeviction,"
                         " and in redis.conf; docs/redis-acl.md)")  # fmt: skip


@pytest.mark.parametrize("policy", VOLATILE)
def test_volatile_policies_may_drop_the_keys_with_a_ttl(policy):
    line = warning(Eviction(policy, 3 << 30), WHERE)
    assert f"maxmemory-policy {policy} with maxmemory 3gb" in line and "keys that carry a TTL" in line
    assert "internal-call nonces" in line and "messages waiting" not in line  # queues carry no TTL


@pytest.mark.parametrize("policy", [*ALLKEYS, *VOLATILE])
def test_no_limit_evicts_nothing(policy):
    assert said(Eviction(policy, 0), WHERE) == ""


def test_noeviction_is_safe_and_a_policy_not_read_is_said_so():
    assert said(Eviction(SAFE, 50 << 20), WHERE) == ""
    line = said(Eviction(unread="NOPERM: no CONFIG"), WHERE)
    assert line == unchecked(Eviction(unread="NOPERM: no CONFIG"), WHERE)
    assert line.startswith(f"could not check the maxmemory-policy of Redis at {WHERE} (NOPERM: no CONFIG)")
    assert "redis-cli CONFIG GET maxmemory-policy must say noeviction" in line
