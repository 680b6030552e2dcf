"""The dashboard in a real headless browser (Debian's chromium through its chromedriver,
driven by Selenium): login is required, a wrong password is refused, the overview lists
both servers and the holder, SIGKILL of the holder changes the holder and adds a takeover
on the open page without a reload, an action without its CSRF token is refused, a gone
server is forgotten and a module undeployed from their buttons, logout ends the session.
Set ZATO_SCREENSHOT=PATH to keep a PNG of the page taken after the takeover."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import time
import uuid

import pytest
import requests

from tests.support import free_port, wait_for, zato

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

needs_browser = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="chromium and chromium-driver are not installed (bin/setup-deps installs them)",
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="zato-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console: driver.get_log("browser")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


# The page updates itself in place (server-sent events): an element found in one WebDriver call
# may be replaced before the next call reads it (StaleElementReferenceException). So the page's
# text is read in one script, a snapshot the page cannot change halfway.
_TEXTS = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText)"


def texts(driver, css: str) -> list[str]:
    """The text of every element matching `css`, whitespace runs as single spaces (as a table
    row's cells read), in one snapshot."""
    return [" ".join(t.split()) for t in driver.execute_script(_TEXTS, css) or []]


def text(driver, css: str) -> str:
    """The element's text; "" while there is none or the page is being replaced (a form post)."""
    from selenium.common.exceptions import WebDriverException

    try:
        found = texts(driver, css)
    except WebDriverException:  # the document is being unloaded
        return ""
    return found[0] if found else ""


def rows(driver, table: str) -> list[str]:
    return texts(driver, f"#{table} tbody tr")


_ROW = """const [table, first] = arguments;
const heads = Array.from(document.querySelectorAll('#' + table + ' thead th')).map(th => th.innerText);
const tr = Array.from(document.querySelectorAll('#' + table + ' tbody tr'))
  .find(r => r.cells[0] && r.cells[0].innerText === first);
return tr ? Object.fromEntries(heads.map((h, i) => [h, tr.cells[i] ? tr.cells[i].innerText : null]))
  : null;"""


def row(driver, table: str, first: str) -> dict:
    """The row of `table` whose first cell is `first`, as {column heading: cell text}; {} if none."""
    return driver.execute_script(_ROW, table, first) or {}


def in_view(driver, css: str) -> bool:
    """Whether the element is shown, all of it within the window as it is scrolled now."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); if (!e) return false;"
        "const r = e.getBoundingClientRect();"
        "return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;",
        css,
    )


def login(driver, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()


@needs_browser
def test_dashboard_live_takeover_login_and_csrf(quickstart, browser, tmp_path):
    qs = quickstart(servers=2)
    qs.start("server1", "server2", "dashboard")
    url = f"http://127.0.0.1:{qs.dashboard_port}/"
    user, password = qs.admin_auth

    browser.get(url)
    assert browser.current_url.endswith("/login")  # login is required
    login(browser, user, "not-" + password)
    wait_for(lambda: "Wrong user or password" in text(browser, "#login-error"), 10, what="the login error")
    assert browser.current_url.endswith("/login")
    login(browser, user, password)

    def both_live() -> bool:
        servers = rows(browser, "servers")
        return [s.split()[:2] for s in servers] == [["server1", "live"], ["server2", "live"]]

    def holder_and_its_takeover() -> str | None:
        """The holder, once the newest takeover on the page is its own: a server takes the
        lease a moment before it records the takeover, so a page may show the holder first."""
        holder, epoch = text(browser, "#lease-holder"), text(browser, "#lease-epoch")
        newest = rows(browser, "takeovers")[:1]
        return holder if both_live() and newest and newest[0].split()[1:3] == [holder, epoch] else None

    holder = wait_for(
        holder_and_its_takeover, 30, what="both servers live, the holder and its takeover on the page"
    )
    assert holder in ("server1", "server2")
    assert text(browser, "#async") == "invoke_async: 0 queued, 0 parked"
    other = "server2" if holder == "server1" else "server1"
    takeovers_before = len(rows(browser, "takeovers"))
    assert takeovers_before >= 1

    browser.execute_script("window.zatoNoReload = 1")
    qs.kill(holder, signal.SIGKILL)
    wait_for(lambda: text(browser, "#lease-holder") == other, 30, what="the new holder on the page")
    wait_for(lambda: len(rows(browser, "takeovers")) == takeovers_before + 1, 10, what="the new takeover")
    assert rows(browser, "takeovers")[0].split()[1:3] == [other, text(browser, "#lease-epoch")]
    wait_for(lambda: f"{holder} gone" in " ".join(rows(browser, "servers")), 30, what="the dead server gone")
    assert browser.execute_script("return window.zatoNoReload") == 1  # updated in place, no reload
    if os.environ.get("ZATO_SCREENSHOT"):
        browser.save_screenshot(os.environ["ZATO_SCREENSHOT"])

    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    drain = f"{url}api/servers/{other}/drain"
    refused = requests.post(drain, cookies=cookies, timeout=10)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    wrong = requests.post(drain, cookies=cookies, headers={"X-CSRF-Token": "forged"}, timeout=10)
    assert wrong.status_code == 403

    from selenium.webdriver.common.by import By

    # The killed server, gone, can be forgotten (asked to confirm): its row leaves the page.
    forget = f"//tr[@data-name='{holder}']//button[text()='Forget']"
    browser.find_element(By.XPATH, forget).click()
    alert = browser.switch_to.alert
    assert alert.text == f"Remove {holder} from the cluster's list for good?"
    alert.accept()
    wait_for(lambda: [r.split()[0] for r in rows(browser, "servers")] == [other], 15, what="the row gone")
    assert not browser.find_elements(By.XPATH, f"//tr[@data-name='{other}']//button[text()='Forget']")

    # A deployed module's Undeploy button (asked to confirm) takes its services off the page.
    module = tmp_path / "bye_mod.py"
    module.write_text("from zato.service import Service\n\nclass Bye(Service):\n    name = 'dash.bye'\n")
    zato("deploy", qs.path, str(module))
    wait_for(lambda: "dash.bye bye_mod Undeploy" in rows(browser, "services"), 15, what="the module's row")
    browser.find_element(By.CSS_SELECTOR, "#services tbody button").click()
    alert = browser.switch_to.alert
    assert alert.text == "Remove module bye_mod and its services from every server?"
    alert.accept()
    wait_for(lambda: rows(browser, "services") == [], 15, what="the undeployed module gone from the page")

    # User-config files deployed to the cluster are named.
    assert text(browser, "#user-config") == "none"
    conf = tmp_path / "crm.ini"
    conf.write_text("[db]\nname = crm\n")
    zato("deploy", qs.path, str(conf))
    wait_for(lambda: text(browser, "#user-config") == "crm", 15, what="the deployed user config on the page")

    # HTTP channels show who may call them: a security definition's name, or "open".
    zato("conn", "create", "security", qs.path, "--name", "crm-users", "--type", "apikey", "--password", "k")
    zato("channel", "create", qs.path, "--name", "crm", "--url-path", "/crm", "--service", "crm.get",
         "--security", "crm-users")  # fmt: skip
    zato("channel", "create", qs.path, "--name", "pub", "--url-path", "/pub", "--service", "pub.get")
    want = ["crm /crm any crm.get crm-users yes", "pub /pub any pub.get open yes"]
    wait_for(lambda: rows(browser, "channels") == want, 20, what="both channels with their security")

    browser.find_element(By.ID, "logout").click()
    wait_for(lambda: browser.current_url.endswith("/login"), 10, what="back at the login page")
    assert requests.get(url + "api/state", cookies=cookies, timeout=10).status_code == 401


class Operator:
    """A logged-in dashboard session over plain HTTP (the page's own endpoints)."""

    def __init__(self, url: str, user: str, password: str):
        self.url, self.http = url, requests.Session()
        r = self.http.post(url + "login", data={"username": user, "password": password}, timeout=10)
        assert r.status_code == 200 and r.url.rstrip("/") == url.rstrip("/"), r.text
        page = self.http.get(url, timeout=10).text
        self.csrf = page.split('name="csrf" content="', 1)[1].split('"', 1)[0]

    def state(self) -> dict:
        return self.http.get(self.url + "api/state", timeout=10).json()

    def act(self, path: str, **kw) -> dict:
        r = self.http.post(self.url + path, headers={"X-CSRF-Token": self.csrf}, timeout=30, **kw)
        assert r.status_code == 200, r.text
        return r.json()


def connector(op: Operator, name: str) -> dict:
    return next((c for c in op.state()["connectors"] if c["name"] == name), {})


def lb_state(op: Operator, server: str) -> str:
    return next((b["state"] for b in op.state()["lb"]["servers"] if b["name"] == server), "")


def test_actions_drain_ready_restart_and_resend(quickstart):
    from zato.coord.client import connect
    from zato.coord.queues import OutQueue

    qs = quickstart(servers=1)
    qs.start("server1", "load-balancer", "dashboard")
    zato(
        "conn",
        "create",
        "amqp-def",
        qs.path,
        "--name",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        "5672",
        "--username",
        "guest",
        "--password",
        "guest",
    )
    zato(
        "conn",
        "create",
        "amqp-outgoing",
        qs.path,
        "--name",
        "out1",
        "--def",
        "local",
        "--exchange",
        "amq.topic",
        "--routing-key",
        "nobody.listens",
    )
    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)

    assert "drain" in op.act("api/servers/server1/drain")["result"]
    wait_for(lambda: lb_state(op, "server1") == "DRAIN", 10, what="server1 drained in HAProxy")
    time.sleep(1.0)  # several LB controller reconciles: the operator's hold is kept, not undone
    assert lb_state(op, "server1") == "DRAIN"
    op.act("api/servers/server1/ready")
    wait_for(lambda: lb_state(op, "server1") == "UP", 10, what="server1 ready again")

    name = "amqp-outgoing:out1"
    wait_for(lambda: connector(op, name).get("state") == "RUNNING", 30, what="the outgoing connector")
    pid = connector(op, name)["pid"]
    op.act(f"api/connectors/{name}/restart")
    wait_for(lambda: connector(op, name).get("pid") not in (None, pid), 30, what="a new connector process")
    assert connector(op, name)["restarts"] == 1

    queue = OutQueue(connect(qs.settings("server1").redis), qs.cluster, "amqp", "out1")
    queue.client.lpush(queue.parked, '{"body": "x"}')
    running = 'connector="amqp-outgoing:out1",kind="amqp-outgoing",state="RUNNING"'
    # The restarted connector is RUNNING once its startsecs passed: the new pid shows earlier.
    metrics = wait_for(
        lambda: (
            (m := requests.get(qs.server_url("server1") + "/metrics", timeout=10).text)
            and f"zato_connector_state{{{running}}} 1.0" in m
            and m
        ),
        30,
        what="/metrics showing the restarted connector RUNNING",
    )
    parked = 'connection="out1",connector="amqp-outgoing:out1",kind="amqp-outgoing",list="parked"'
    assert f"zato_outgoing_queue_depth{{{parked}}} 1.0" in metrics
    doing = 'activity="running",connector="amqp-outgoing:out1",kind="amqp-outgoing"'  # names sorted
    wait_for(
        lambda: (
            f"zato_connector_activity{{{doing}}} 1.0"
            in requests.get(qs.server_url("server1") + "/metrics", timeout=10).text
        ),
        30,
        what="/metrics showing what the connector says it does",
    )
    assert op.act("api/outgoing/amqp/out1/resend")["result"].endswith("1 parked message(s) queued again")

    # An invoke_async call parked because workers died under it: shown, and run again on demand.
    from zato.coord.keys import Keys
    from zato.coord.signing import call_key, sign_call

    call = {"service": "dash.gone", "payload": None, "cid": "KPARKED"}  # signed, as a server queues it
    parked = json.dumps({**sign_call(call_key(qs.cluster_secret, qs.cluster), json.dumps(call)), "deaths": 3})
    queue.client.rpush(Keys(qs.cluster).async_parked, parked)
    wait_for(lambda: op.state()["async"].get("parked") == 1, 10, what="the parked call counted")
    metrics = requests.get(qs.server_url("server1") + "/metrics", timeout=10).text
    assert 'zato_async_calls{list="parked"} 1.0' in metrics, metrics  # for an alert on parked calls
    assert op.act("api/async/requeue")["result"] == "invoke_async: 1 parked call(s) queued again"
    wait_for(lambda: op.state()["async"].get("parked") == 0, 10, what="no parked call left")
    wait_for(lambda: "cid KPARKED: async service dash.gone failed" in qs.server_logs(), 15, what="it ran")

    source = "from zato.service import Service\n\nclass Up(Service):\n    name = 'dash.up'\n"
    source += "    def handle(self):\n        self.response.payload = {'up': True}\n"
    result = op.act("api/deploy", files={"module": ("dash_mod.py", source)})["result"]
    assert "dash.up" in result
    # the answer comes once every worker loaded it (before: at once, and the service was not there yet)
    assert re.search(r"; loaded by every worker in \d+\.\d\d s \(1\)$", result), result  # its 1 worker
    s = qs.settings("server1")
    auth = (s.invoke_username, s.invoke_password)
    up = requests.post(qs.server_url("server1") + "/zato/api/invoke/dash.up", json={}, auth=auth, timeout=10)
    assert (up.status_code, up.json()) == (200, {"up": True}), up.text
    wait_for(
        lambda: {"name": "dash.up", "module": "dash_mod"} in op.state()["services"],
        10,
        what="the uploaded service listed",
    )
    assert op.act("api/modules/dash_mod/undeploy")["result"] == "undeployed module dash_mod: dash.up"
    wait_for(lambda: op.state()["services"] == [], 10, what="the undeployed service gone")


def test_the_page_works_and_says_so_when_redis_is_down(quickstart):
    qs = quickstart(servers=1, lb=False)
    qs._merge(
        os.path.join(qs.dashboard_dir, "config", "dashboard.conf"),
        "kvdb",
        {"url": f"redis://127.0.0.1:{free_port()}/0"},
    )  # nothing listens there
    qs.start("dashboard")
    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
    wait_for(lambda: any(e.startswith("Redis") for e in op.state()["errors"]), 10, what="the Redis error")
    state = op.state()
    assert state["redis_ok"] is False
    assert [(s["name"], s["live"]) for s in state["servers"]] == [("server1", None)]  # from the ODB
    assert "zato.ping" not in str(state["services"])  # deployed services only, none here
    assert op.http.get(op.url, timeout=10).status_code == 200

    # Guessing the password: after 10 failures in a minute this address gets 429, even right.
    guesses = [
        requests.post(
            op.url + "login",
            data={"username": "admin", "password": f"guess{i}"},
            timeout=10,
            allow_redirects=False,
        ).status_code
        for i in range(11)
    ]
    assert guesses == [401] * 10 + [429]
    user, password = qs.admin_auth
    right = requests.post(
        op.url + "login", data={"username": user, "password": password}, timeout=10, allow_redirects=False
    )
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 50


def test_actions_on_names_the_cluster_does_not_have_are_404_with_what_it_has(quickstart):
    qs = quickstart(servers=1)
    qs.start("server1", "load-balancer", "dashboard")
    op = Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)
    cluster = qs.cluster

    def refused(path: str) -> tuple[int, str]:
        r = op.http.post(op.url + path, headers={"X-CSRF-Token": op.csrf}, timeout=30)
        return r.status_code, r.json().get("error", r.text)

    assert refused("api/servers/nosuch/drain") == (
        404,
        f"drain server nosuch: no server named 'nosuch' in cluster {cluster} (servers: server1)",
    )
    assert refused("api/connectors/nosuch/restart") == (
        404,
        f"restart connector nosuch: no connector named 'nosuch' in cluster {cluster} (connectors: none)",
    )
    assert refused("api/outgoing/amqp/nosuch/resend") == (
        404,
        f"re-send parked amqp nosuch: no outgoing amqp connection named 'nosuch' in cluster {cluster}",
    )
    assert refused("api/channels/amqp/nosuch/replay") == (
        404,
        f"replay parked amqp-channel nosuch: no amqp-channel named 'nosuch' in cluster {cluster}",
    )
    # The server that exists is as it was in the LB, and can still be drained.
    wait_for(lambda: lb_state(op, "server1").startswith("UP"), 30, what="server1 UP in HAProxy")
    assert "drain" in op.act("api/servers/server1/drain")["result"]


@needs_browser
def test_a_refused_action_is_shown_as_an_error_on_the_page(quickstart, browser):
    qs = quickstart(servers=1, lb=False)
    qs.start("server1", "dashboard")
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    wait_for(lambda: rows(browser, "servers"), 30, what="the overview page")
    browser.execute_script("window.confirm = () => true; act('api/servers/nosuch/drain', 'Drain nosuch?')")
    wait_for(lambda: text(browser, "#message").startswith("refused: "), 10, what="the refusal on the page")
    assert text(browser, "#message") == (
        f"refused: drain server nosuch: no server named 'nosuch' in cluster {qs.cluster} (servers: server1)"
    )
    assert browser.execute_script("return document.getElementById('message').className") == "bad"


@needs_browser
def test_replay_parked_puts_an_amqp_channels_parked_messages_back_from_its_row(quickstart, browser):
    """An AMQP channel whose service failed has messages in its parking queue: its row says how
    many and has a "Replay parked" button (asked to confirm, logged with the user). Once the
    service is mended, they reach it and the button goes. Before, nothing put them back."""
    import redis
    from selenium.webdriver.common.by import By

    from tests.conn_support import Rabbit, broken_key, services_source
    from tests.support import REDIS_URL

    qs = quickstart(servers=1, lb=False)
    qs.start("server1", "dashboard")
    qs.deploy("conn_services", services_source())
    client = redis.Redis.from_url(REDIS_URL)
    client.set(broken_key(qs.cluster), 1)  # conn.flaky fails every message
    rabbit = Rabbit()
    try:
        queue = rabbit.queue(f"zt-dash-{uuid.uuid4().hex[:8]}")
        parked = queue + ".zato-parked"
        zato("conn", "create", "amqp-def", qs.path, "--name", "local", "--password", "guest")
        create = ("conn", "create", "amqp-channel", qs.path, "--name", "orders", "--def", "local")
        zato(*create, "--queue", queue, "--service", "conn.flaky", "--max-deliveries", "1")
        for i in range(3):
            rabbit.publish(queue, json.dumps({"d": i}))
        browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
        login(browser, *qs.admin_auth)
        button = "//tr[td[1]='amqp-channel:orders']//button[text()='Replay parked']"
        wait_for(
            lambda: (
                {k: v for k, v in row(browser, "connectors", "amqp-channel:orders").items() if "parked" in k}
                == {"parked since start": "3", "parked now": "3"}
            ),
            60,
            what="the three parked on the channel's row",
        )
        assert browser.find_elements(By.XPATH, button)

        client.delete(broken_key(qs.cluster))  # the service is mended
        browser.find_element(By.XPATH, button).click()
        alert = browser.switch_to.alert
        question = "Put the 3 message(s) parked by orders back on its queue, for its service to run again?"
        assert alert.text == question
        alert.accept()
        result = (
            f"amqp-channel orders: 3 parked message(s) moved back to queue {queue!r}; 0 left in {parked!r}"
        )
        wait_for(lambda: text(browser, "#message") == result, 30, what="the result on the page")
        received = f"zato:{qs.cluster}:test:received"
        wait_for(
            lambda: sorted(json.loads(m)["d"] for m in client.lrange(received, 0, -1)) == [0, 1, 2],
            30,
            what="the three at the service",
        )
        wait_for(lambda: not browser.find_elements(By.XPATH, button), 30, what="the button gone")
        with open(os.path.join(qs.dashboard_dir, "logs", "dashboard.log")) as f:
            log = f.read()
        user = qs.admin_auth[0]
        assert f"dashboard: user {user}: replay parked amqp-channel orders: {result}" in log
    finally:
        # Every step runs whatever failed before it (ExitStack: last registered, first run), and the
        # queues go last: a running channel connector declares its queue again once it is deleted
        # under it. Before, a failed `zato stop` skipped rabbit.close(): zt-dash-* was left behind.
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(rabbit.close)
            cleanup.callback(qs.close)  # every process of the cluster gone (SIGTERM, then SIGKILL)
            cleanup.callback(client.close)
            cleanup.callback(client.delete, broken_key(qs.cluster))


@needs_browser
def test_a_rows_buttons_stay_under_the_mouse_while_its_other_cells_change(quickstart, browser):
    """The page rewrote every row at every snapshot (twice a second while requests flow): a
    button could be replaced between the press and the release of a click, which was lost (and
    Selenium's click found it stale). Now only the cells that changed are replaced."""
    qs = quickstart(servers=1)
    qs.start("server1", "load-balancer", "dashboard")
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    wait_for(lambda: (rows(browser, "servers") or [""])[0].endswith(" UP DrainReady"), 30, what="server1 UP")
    browser.execute_script("window.kept = document.querySelector(\"tr[data-name='server1'] button\")")
    browser.execute_script("window.confirm = () => true; act('api/servers/server1/drain', 'Drain server1?')")
    drained = " DRAIN (held) DrainReady"  # HAProxy's state, and the operator's hold
    wait_for(lambda: rows(browser, "servers")[0].endswith(drained), 30, what="server1 DRAIN")
    assert browser.execute_script("return [window.kept.isConnected, window.kept.title]") == [
        True,
        "Drain server1 in the load balancer?",
    ]


@needs_browser
def test_re_send_parked_shows_while_some_wait_and_its_result_is_in_view(quickstart, browser):
    """An outgoing connection's row: "parked since start" (its process's count) apart from
    "parked now" (its parked list in Redis), "Re-send parked" only while some wait, and the
    result of a click far down the page in view. Before: the button on every outgoing row,
    parked shown only as the process's count, and the result at the top of the page, out of view."""
    import redis
    from selenium.webdriver.common.by import By

    from tests.support import REDIS_URL, cluster_name
    from zato.coord.queues import OutQueue

    qs = quickstart(servers=1, lb=False, cluster=cluster_name("polish-dash"))
    qs.start("server1", "dashboard")
    zato("conn", "create", "amqp-def", qs.path, "--name", "local", "--password", "guest")
    out = ("--def", "local", "--exchange", "amq.topic", "--routing-key", "nobody.listens")
    zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out1", *out)
    browser.set_window_size(1280, 500)  # the connectors' table below the fold
    browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
    login(browser, *qs.admin_auth)
    name = "amqp-outgoing:out1"
    wait_for(lambda: row(browser, "connectors", name).get("state") == "RUNNING", 60, what="the connector")
    wait_for(lambda: row(browser, "connectors", name).get("parked now") == "0", 10, what="none parked now")
    button = f"//tr[td[1]='{name}']//button[text()='Re-send parked']"
    assert not browser.find_elements(By.XPATH, button)  # nothing to re-send

    client = redis.Redis.from_url(REDIS_URL)
    try:
        queue = OutQueue(client, qs.cluster, "amqp", "out1")
        client.lpush(queue.parked, '{"body": "x"}', '{"body": "y"}')
        wait_for(lambda: browser.find_elements(By.XPATH, button), 10, what="the button, 2 parked")
        assert row(browser, "connectors", name)["parked now"] == "2"
        assert row(browser, "connectors", name)["parked since start"] == "0"  # parked by hand here
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        browser.find_element(By.XPATH, button).click()
        alert = browser.switch_to.alert
        assert alert.text == "Queue the 2 parked message(s) of out1 again?"
        alert.accept()
        result = "outgoing amqp out1: 2 parked message(s) queued again"
        wait_for(lambda: text(browser, "#message") == result, 30, what="the result on the page")
        assert browser.execute_script("return window.scrollY") > 0  # still down the page
        assert in_view(browser, "#message")
        # No queue takes them (nobody.listens): the broker returns them and the connector parks
        # them again, now counted by its process too.
        wait_for(
            lambda: (
                {k: v for k, v in row(browser, "connectors", name).items() if "parked" in k}
                == {"parked since start": "2", "parked now": "2"}
            ),
            30,
            what="both parked again by the connector",
        )
    finally:
        client.close()
