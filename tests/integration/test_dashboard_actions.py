"""The dashboard's actions as an operator clicks them, in a real headless browser (Debian's
chromium through Selenium) against a real cluster: a module edited after it was chosen for
Deploy, and the "Run parked again" button of invoke_async calls while the page updates; and an
action waiting for a locked SQLite ODB while the page goes on (over plain HTTP, as the page asks)."""

from __future__ import annotations

import json
import os
import time

import redis

from tests.integration.test_dashboard import browser, login, needs_browser, text  # noqa: F401 - browser: a fixture
from tests.support import REDIS_URL, cluster_name, wait_for


def answered(driver) -> str:  # noqa: ANN001 - a WebDriver
    """The action bar's text once the answer came ("" while it says "working")."""
    said = text(driver, "#message")
    return "" if said.startswith("working") else said


@needs_browser
def test_deploy_of_a_file_edited_since_it_was_chosen_says_to_choose_it_again(quickstart, browser, tmp_path):  # noqa: F811 - the fixture
    """An operator deploys a module, mends it in an editor and clicks Deploy again: the browser
    cannot send a file changed since it was chosen and the upload failed before the request left,
    yet the page said "failed: no answer from the dashboard (Failed to fetch)", as if the
    dashboard were down. Now it says the file changed and to choose it again, which deploys it."""
    from selenium.webdriver.common.by import By

    qs = quickstart(servers=1, lb=False, cluster=cluster_name("dash-edit"))
    qs.start("server1", "dashboard")
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    wait_for(lambda: text(browser, "#live").startswith("live"), 30, what="the live page")
    browser.execute_script("window.confirm = () => true")

    module = tmp_path / "mended.py"
    source = "from zato.service import Service\n\nclass Mended(Service):\n    name = 'dash.mended'\n"
    module.write_text(source)
    browser.find_element(By.ID, "deploy-file").send_keys(str(module))
    browser.find_element(By.ID, "deploy").click()
    wait_for(lambda: answered(browser).startswith("deployed module mended version 1"), 30, what="version 1")

    module.write_text(source + "    def handle(self):\n        self.response.payload = 'mended'\n")
    later = os.stat(module).st_mtime + 5  # an edit's new time, whatever the clock's resolution
    os.utime(module, (later, later))
    first = answered(browser)
    browser.find_element(By.ID, "deploy").click()
    # the first click's answer stays on the page until the second's comes (read at once, it was
    # taken for the second's in a whole run)
    wait_for(lambda: answered(browser) not in ("", first), 30, what="the second click's answer")
    assert answered(browser) == (
        "not sent: mended.py cannot be read (NotReadableError): it was changed or removed since it"
        " was chosen; choose it again"
    )
    assert browser.execute_script("return document.getElementById('message').className") == "bad"

    browser.find_element(By.ID, "deploy-file").send_keys(str(module))  # chosen again
    browser.find_element(By.ID, "deploy").click()
    wait_for(lambda: answered(browser).startswith("deployed module mended version 2"), 30, what="version 2")


@needs_browser
def test_run_parked_again_stays_under_the_mouse_while_the_page_updates(quickstart, browser):  # noqa: F811 - the fixture
    """The "Run parked again" button of invoke_async calls was made anew at every snapshot
    (twice a second while a server holds the lease or requests flow): a click whose press and
    release a snapshot fell between was lost, no question asked. Now the button stays while its
    question does, and such a click asks and runs the parked call again."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from zato.coord.keys import Keys
    from zato.coord.signing import call_key, sign_call

    qs = quickstart(servers=1, lb=False, cluster=cluster_name("dash-requeue"))
    qs.start("server1", "dashboard")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        # signed, as a server parks it
        call = {"service": "dash.gone", "payload": None, "cid": "KPARKEDCLICK"}
        parked = {**sign_call(call_key(qs.cluster_secret, qs.cluster), json.dumps(call)), "deaths": 3}
        client.rpush(Keys(qs.cluster).async_parked, json.dumps(parked))
        browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
        login(browser, *qs.admin_auth)
        wait_for(lambda: text(browser, "#async-actions button") == "Run parked again", 30, what="the button")
        # a server holding the lease: a new snapshot every refresh (its lease's time left)
        wait_for(lambda: text(browser, "#lease-holder") == "server1", 30, what="the holder")
        count = "window.zatoSnapshots = (window.zatoSnapshots || 0) + 1"
        browser.execute_script(f"events.addEventListener('message', () => {{ {count}; }})")
        snapshots = "return window.zatoSnapshots || 0"

        button = browser.find_element(By.CSS_SELECTOR, "#async-actions button")
        ActionChains(browser).move_to_element(button).click_and_hold().perform()
        wait_for(lambda: browser.execute_script(snapshots) >= 2, 10, what="two snapshots while pressed")
        ActionChains(browser).release().perform()
        alert = wait_for(lambda: _alert(browser), 5, what="the click's question")
        assert alert.text == "Queue the 1 parked invoke_async call(s) again? (workers died running them)"
        alert.accept()
        wait_for(lambda: answered(browser), 30, what="the answer")
        assert answered(browser) == "invoke_async: 1 parked call(s) queued again"
        wait_for(lambda: text(browser, "#async-parked") == "0", 10, what="none parked left")
    finally:
        client.close()


def _alert(driver):  # noqa: ANN001, ANN202 - a WebDriver, its Alert
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
        _ = alert.text
        return alert
    except NoAlertPresentException:
        return None


def test_an_action_waiting_for_a_locked_sqlite_odb_holds_only_itself(quickstart):
    """A sqlite3 shell (or a backup) holds the SQLite ODB's write lock while an operator clicks
    Undeploy: the action waits for the lock, and SQLite's wait held the whole dashboard with it
    (its page's stream silent, the state and a login unanswered) for up to 30 s. Now the
    dashboard answers them meanwhile, and the action ends once the lock is let go."""
    import sqlite3
    import threading

    from tests.integration.test_dashboard import Operator
    from tests.integration.test_dashboard_outages import post

    qs = quickstart(servers=1, lb=False, cluster=cluster_name("dash-locked"))
    qs.start("dashboard")
    source = "from zato.service import Service\n\nclass L(Service):\n    name = 'dash.locked'\n"
    qs.deploy("locked_mod", source)
    url = f"http://127.0.0.1:{qs.dashboard_port}/"
    op = Operator(url, *qs.admin_auth)
    wait_for(lambda: op.state()["services"], 30, what="the module on the page")

    shell = sqlite3.connect(os.path.join(qs.path, "odb.db"), isolation_level=None)
    shell.execute("BEGIN IMMEDIATE")  # the write lock, held until the test lets it go
    try:
        held: list = []
        waiting = threading.Thread(target=lambda: held.append(post(op, "api/modules/locked_mod/undeploy")))
        waiting.start()
        for _ in range(5):  # the page's requests, answered while the Undeploy waits for the lock
            assert op.http.get(url, timeout=10).status_code == 200
            assert op.state()["cluster"] == qs.cluster
            Operator(url, *qs.admin_auth)
            time.sleep(0.2)
        assert waiting.is_alive()  # it still waits for the lock
    finally:
        shell.execute("ROLLBACK")
        shell.close()
    waiting.join(60)
    assert held == [(200, "undeployed module locked_mod: dash.locked")]
    wait_for(lambda: op.state()["services"] == [], 10, what="the module gone from the page")


@needs_browser
def test_a_drain_from_a_dashboard_with_no_lb_on_its_host_shows_on_the_servers_row(quickstart, browser):  # noqa: F811 - the fixture
    """A dashboard on a host without the LB ([lb] dir empty): an operator clicks Drain, the LBs
    keep the server from new requests, and the page showed nothing of it ("-" in its LB column,
    as before the click), nor later which servers are held drained. Now the row says so, until
    Ready lifts the hold."""
    from selenium.webdriver.common.by import By

    from tests.integration.test_dashboard import row

    qs = quickstart(servers=1, cluster=cluster_name("dash-held"))
    qs._merge(os.path.join(qs.dashboard_dir, "config", "dashboard.conf"), "lb", {"dir": ""})
    qs.start("server1", "load-balancer", "dashboard")
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    wait_for(lambda: row(browser, "servers", "server1").get("state") == "live", 30, what="server1 live")
    assert row(browser, "servers", "server1")["LB"] == "-"  # no LB on this host
    browser.execute_script("window.confirm = () => true")

    browser.find_element(By.XPATH, "//tr[@data-name='server1']//button[text()='Drain']").click()
    wait_for(lambda: answered(browser), 30, what="the drain's answer")
    assert answered(browser) == "server server1 set to drain in the load balancer"
    lb = lambda: row(browser, "servers", "server1")["LB"]  # noqa: E731
    wait_for(lambda: lb() == "drain (held)", 10, what="the hold on the row")

    browser.find_element(By.XPATH, "//tr[@data-name='server1']//button[text()='Ready']").click()
    ready = "server server1 set to ready in the load balancer"
    wait_for(lambda: answered(browser) == ready, 30, what="the ready's answer")
    wait_for(lambda: lb() == "-", 10, what="the hold gone from the row")


def test_a_drain_whose_lb_dir_is_gone_says_it_was_made_not_refused(quickstart, tmp_path):
    """dashboard.conf's [lb] dir names a load balancer no longer on this host (moved to a host of
    its own): Drain answered 400, "refused: ... lb.conf: config file not found", yet the hold was
    made (every LB keeps the server drained), and so Ready's "refused" lifted it. Now the answer
    says the drain was set, and why this host's HAProxy was not told at once."""
    from tests.integration.test_dashboard import Operator
    from tests.integration.test_dashboard_outages import post
    from zato.coord import membership
    from zato.coord.client import connect

    gone = tmp_path / "moved-lb"
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("dash-lb-gone"))
    qs._merge(os.path.join(qs.dashboard_dir, "config", "dashboard.conf"), "lb", {"dir": str(gone)})
    qs.start("server1", "dashboard")
    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
    wait_for(lambda: [s.get("live") for s in op.state()["servers"]] == [True], 30, what="server1 live")
    client = connect(qs.settings("server1").redis)
    try:
        status, said = post(op, "api/servers/server1/drain")
        assert membership.operator_drained(client, qs.cluster) == {"server1"}  # made, whatever is said
        assert (status, said) == (
            200,
            "server server1 set to drain in the load balancer (the LB controller applies it; the Runtime API"
            f" said: {gone}/config/lb.conf: config file not found)",
        )
        status, said = post(op, "api/servers/server1/ready")
        assert membership.operator_drained(client, qs.cluster) == set()
        assert status == 200, said
        assert said.startswith("server server1 set to ready in the load balancer"), said
    finally:
        client.close()


@needs_browser
def test_two_actions_at_once_each_keep_their_answer_on_the_page(quickstart, browser):  # noqa: F811 - the fixture
    """An operator starts a Deploy (its module takes a second to import) and, while it works,
    clicks another action, which is refused at once: the page had one text for all, so the
    refusal replaced the Deploy's "working", and the Deploy's answer, when it came, the refusal,
    which the operator never saw. Now each click has its line in the bar: both answers stay."""
    qs = quickstart(servers=1, lb=False, cluster=cluster_name("dash-two"))
    qs.start("dashboard")
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    wait_for(lambda: text(browser, "#live").startswith("live"), 30, what="the live page")
    browser.execute_script(
        "window.confirm = () => true;"
        "const slow = new FormData();"
        "slow.append('module', new Blob(['import time\\ntime.sleep(1)\\n']), 'slow_mod.py');"
        "act('api/deploy', 'Deploy slow_mod.py to every server of the cluster?', slow);"
        "act('api/servers/nosuch/drain', 'Drain nosuch in the load balancer?');"
    )
    wait_for(lambda: "deployed module slow_mod" in text(browser, "#message"), 30, what="the Deploy's answer")
    wait_for(lambda: "working" not in text(browser, "#message"), 30, what="both answers")
    said = text(browser, "#message")
    assert said.startswith("deployed module slow_mod version 1: no services"), said
    cluster = qs.cluster
    assert said.endswith(
        f" refused: drain server nosuch: no server named 'nosuch' in cluster {cluster} (servers: server1)"
    ), said
    lines = "return Array.from(document.querySelectorAll('#message > div')).map(e => e.className)"
    assert browser.execute_script(lines) == ["", "bad"]  # the Deploy's line, then the refusal's
    assert browser.execute_script("return document.getElementById('message').className") == "bad"
