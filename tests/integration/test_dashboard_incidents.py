"""The dashboard as an operator uses it during an incident, in a real headless browser (Debian's
chromium through Selenium) against real dashboard processes: two clusters' dashboards on one
host open in one browser, and a dashboard that cannot reach Redis."""

from __future__ import annotations

import os
import time

from tests.integration.test_dashboard import browser, login, needs_browser, row, text  # noqa: F401 - browser: a fixture
from tests.support import free_port, wait_for


def dashboard_only(quickstart, **conf: dict):  # noqa: ANN201 - Quickstart
    """A quickstart of one server (not started) whose dashboard alone runs, with `conf`
    sections merged into dashboard.conf."""
    qs = quickstart(servers=1, lb=False)
    for section, values in conf.items():
        qs._merge(os.path.join(qs.dashboard_dir, "config", "dashboard.conf"), section, values)
    qs.start("dashboard")
    return qs


def console_errors(driver) -> list[str]:  # noqa: ANN001 - a WebDriver
    """The page's console lines at level SEVERE (a script error, a resource that failed)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


@needs_browser
def test_two_clusters_dashboards_on_one_host_keep_their_own_sessions(quickstart, browser):  # noqa: F811 - the fixture
    """An operator watching two clusters' dashboards (one host, two ports) in one browser: the
    login to the second replaced the first one's session cookie (a browser sends a host's cookies
    to every port of it), so the first page went on updating while its every button answered
    "refused: log in first". Now each dashboard has its own cookie."""
    first, second = dashboard_only(quickstart), dashboard_only(quickstart)
    browser.get(f"http://127.0.0.1:{first.dashboard_port}/")
    login(browser, *first.admin_auth)
    wait_for(lambda: row(browser, "servers", "server1"), 30, what="the first cluster's page")
    tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(f"http://127.0.0.1:{second.dashboard_port}/")
    login(browser, *second.admin_auth)
    wait_for(lambda: row(browser, "servers", "server1"), 30, what="the second cluster's page")
    assert text(browser, "#cluster") == second.cluster

    browser.switch_to.window(tab)
    assert text(browser, "#cluster") == first.cluster
    browser.execute_script(
        "window.confirm = () => true; act('api/servers/server1/drain', 'Drain server1 in the load balancer?')"
    )
    wait_for(lambda: not text(browser, "#message").startswith("working"), 30, what="the drain's answer")
    assert text(browser, "#message").startswith("server server1 set to drain in the load balancer")


@needs_browser
def test_with_redis_away_the_page_says_the_holder_and_connectors_are_unknown(quickstart, browser):  # noqa: F811 - the fixture
    """The dashboard cannot reach Redis (a closed port): the page said "holder nobody", with no
    connectors, as if the cluster had stopped all of them; now it says neither is known. Nor
    does the page leave an error in the browser's console (a favicon it did not have: 404)."""
    qs = dashboard_only(quickstart, kvdb={"url": f"redis://127.0.0.1:{free_port()}/0"})
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    wait_for(lambda: text(browser, "#errors").startswith("Redis: "), 30, what="the Redis error on the page")
    assert row(browser, "servers", "server1")["state"] == "unknown"
    assert text(browser, "#lease-holder") == "unknown (Redis could not be read)"
    assert text(browser, "#connectors-note") == "not known while Redis cannot be read"
    assert console_errors(browser) == []


def test_a_drain_redis_refuses_leaves_no_hold_behind(quickstart):
    """Redis's ACL refuses PUBLISH to the dashboard's user: Drain answered 503 "refused", and yet
    its hold was in Redis (written before the refused notice), so the LB drained the server at
    its next reconcile while the operator had been told it failed. Now neither is made."""
    from tests.integration.test_dashboard import Operator
    from tests.integration.test_dashboard_outages import post
    from tests.support import private_redis
    from zato.coord.keys import Keys

    with private_redis() as (port, admin):
        qs = quickstart(servers=1, lb=False)
        keys, user = Keys(qs.cluster), "h-dash-user"
        admin.execute_command("ACL", "SETUSER", user, "on", ">h-dash-pw", *keys.acl_rules(), "-publish")
        url = f"redis://{user}:h-dash-pw@127.0.0.1:{port}/0"
        qs._merge(os.path.join(qs.dashboard_dir, "config", "dashboard.conf"), "kvdb", {"url": url})
        qs.start("dashboard")
        op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
        status, error = post(op, "api/servers/server1/drain")
        assert status == 503, error
        assert "NOPERM: this user has no permissions to run the 'publish' command" in error
        assert not admin.sismember(keys.operator_drained, "server1")  # nothing for the LB to apply

        admin.execute_command("ACL", "SETUSER", user, "+publish")  # granted: the same click works
        assert post(op, "api/servers/server1/drain")[0] == 200
        assert admin.sismember(keys.operator_drained, "server1")


@needs_browser
def test_a_redis_that_refuses_the_actions_is_an_error_on_the_page(quickstart, browser):  # noqa: F811 - the fixture
    """Redis reads fine but refuses what the actions send: its ACL refuses PUBLISH, or it is a
    replica. The page only read, so it showed no error while every button failed; now it says
    so, and the error goes once Redis takes them again."""
    from tests.support import private_redis
    from zato.coord.keys import Keys

    with private_redis() as (port, admin):
        qs = quickstart(servers=1, lb=False)
        keys, user = Keys(qs.cluster), "h-dash-user"
        admin.execute_command("ACL", "SETUSER", user, "on", ">h-dash-pw", *keys.acl_rules())
        url = f"redis://{user}:h-dash-pw@127.0.0.1:{port}/0"
        qs._merge(os.path.join(qs.dashboard_dir, "config", "dashboard.conf"), "kvdb", {"url": url})
        qs.start("dashboard")
        browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
        login(browser, *qs.admin_auth)
        wait_for(lambda: row(browser, "servers", "server1").get("state") == "gone", 30, what="the page")
        assert text(browser, "#errors") == ""

        admin.execute_command("ACL", "SETUSER", user, "-publish")
        wait_for(lambda: text(browser, "#errors"), 30, what="the ACL's refusal on the page")
        assert text(browser, "#errors") == (
            "Redis: the page's actions will fail: Redis's ACL refuses it to the user of [kvdb] url"
            " (NOPERM: this user has no permissions to run the 'publish' command); grant it"
            " (docs/redis-acl.md)"
        )
        admin.execute_command("ACL", "SETUSER", user, "+publish")
        wait_for(lambda: text(browser, "#errors") == "", 30, what="the error gone once granted")

        admin.replicaof("127.0.0.1", free_port())
        try:
            wait_for(lambda: text(browser, "#errors"), 30, what="the replica's refusal on the page")
            assert text(browser, "#errors") == (
                "Redis: the page's actions will fail: Redis refuses writes (READONLY: it is a replica):"
                " You can't write against a read only replica.; check [kvdb] url: it must name the master,"
                " not a replica (behind Sentinel: a failover may be under way; [kvdb] sentinels and"
                " sentinel_master say which master the Sentinels give)"
            )
            assert text(browser, "#lease-holder") == "nobody"  # read: known (none holds it here)
        finally:
            admin.replicaof("NO", "ONE")
        wait_for(lambda: text(browser, "#errors") == "", 30, what="the error gone once a master again")


@needs_browser
def test_the_dashboard_gone_the_page_says_as_of_when_it_shows_the_cluster(quickstart, browser):  # noqa: F811 - the fixture
    """The dashboard process is killed while its page is open: the page kept every row "live"
    and said only "reconnecting...", the time of what it shows gone. Now it says as of when."""
    import signal

    qs = dashboard_only(quickstart)
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    wait_for(lambda: text(browser, "#live").startswith("live, updated "), 30, what="the live page")
    browser.execute_script("window.zatoNoReload = 1")
    qs.kill("dashboard", signal.SIGKILL)
    wait_for(lambda: text(browser, "#live").startswith("reconnecting"), 30, what="the page reconnecting")
    said = text(browser, "#live")
    assert said.startswith("reconnecting... (the page shows the cluster as of "), said
    at = time.strftime("%H:%M:%S", time.gmtime(browser.execute_script("return shownAt")))
    assert said == f"reconnecting... (the page shows the cluster as of {at} UTC)"
    assert browser.execute_script("return window.zatoNoReload") == 1  # still the page it was


@needs_browser
def test_a_hung_dashboard_its_open_page_says_it_has_heard_nothing_for_so_long(quickstart, browser):  # noqa: F811 - the fixture
    """The dashboard process hangs (here stopped) while its page is open: the stream stays open
    and silent, no error comes, and the page read "live, updated ..." for ever. Now, having
    heard nothing for 9 s, it says so and as of when it shows the cluster; once the dashboard
    answers again, live."""
    import signal

    qs = dashboard_only(quickstart)
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    wait_for(lambda: text(browser, "#live").startswith("live, updated "), 30, what="the live page")
    pid = qs.pid("dashboard")
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        quiet = "no word from the dashboard for "
        wait_for(lambda: text(browser, "#live").startswith(quiet), 30, what=f"the page saying {quiet!r}")
        said = text(browser, "#live")
        at = time.strftime("%H:%M:%S", time.gmtime(browser.execute_script("return shownAt")))
        assert said.endswith(f" s (hung, or the network?): the page shows the cluster as of {at} UTC"), said
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: text(browser, "#live").startswith("live, updated "), 30, what="the page live again")


def test_draining_a_stopped_server_says_it_applies_once_the_server_is_back(quickstart):
    """An operator drains a stopped server so that it gets no traffic when it comes back: the
    answer was "set to drain (the LB controller applies it; the Runtime API said: HAProxy refused
    `set server zato_servers/server1 state drain`: No such server.)", which read as a failure.
    Now it says the server is not running and what happens once it is back, which it does."""
    from tests.integration.test_dashboard import Operator, lb_state
    from tests.integration.test_dashboard_outages import post

    qs = quickstart(servers=1)
    qs.start("server1", "load-balancer", "dashboard")
    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
    wait_for(lambda: lb_state(op, "server1").startswith("UP"), 30, what="server1 UP in HAProxy")
    qs.stop("server1")
    wait_for(lambda: lb_state(op, "server1") == "", 30, what="server1 out of HAProxy")
    assert post(op, "api/servers/server1/drain") == (
        200,
        "server server1 set to drain in the load balancer; it is not running now: once back, it gets no"
        " new requests until made ready",
    )
    qs.start("server1")
    wait_for(lambda: lb_state(op, "server1") == "DRAIN", 30, what="server1 back, drained")
    assert post(op, "api/servers/server1/ready") == (200, "server server1 set to ready in the load balancer")
    wait_for(lambda: lb_state(op, "server1").startswith("UP"), 30, what="server1 ready again")
