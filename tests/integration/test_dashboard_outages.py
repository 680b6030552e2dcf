"""Dashboard actions when what they need is away, over HTTP to a real dashboard process: the
AMQP broker (a TCP proxy in front of the shared RabbitMQ, stopped; the shared broker is never
touched) or Redis cannot be reached -> 503 saying so (was 400, "your request was wrong"); the
broker refusing -> 502; a second replay of a channel while one runs -> 409; a TLS broker with a
private CA reached through dashboard.conf's [tls] ca_file (the dashboard had none); and what the
page says of each (Debian's chromium through Selenium)."""

from __future__ import annotations

import json
import os
import threading
import uuid

import pytest
import requests

from tests.conn_support import Rabbit, TCPProxy
from tests.integration.test_dashboard import Operator, browser, login, needs_browser, text  # noqa: F401 - browser: a fixture
from tests.support import free_port, wait_for, zato


@pytest.fixture
def rabbit():
    """Deletes the queues it declared at the end. Tests ask for it before `quickstart`: pytest
    tears fixtures down in reverse, so the cluster's processes are gone first (a channel
    connector declares its queue again once it is deleted under it)."""
    r = Rabbit()
    yield r
    r.close()


def parked(rabbit: Rabbit, n: int) -> str:
    """A new queue (deleted at the end) with `n` messages in its parking queue; its name."""
    queue = rabbit.queue(f"zt-dash-{uuid.uuid4().hex[:8]}")
    rabbit.ch.queue_declare(queue + ".zato-parked", durable=True)
    rabbit.queues.append(queue + ".zato-parked")  # deleted at the end too
    for i in range(n):
        rabbit.publish(queue + ".zato-parked", json.dumps({"n": i}), headers={"x-zato-deliveries": 5})
    return queue


def amqp_def(qs, name: str, port: int, *more: str) -> None:
    zato("conn", "create", "amqp-def", qs.path, "--name", name, "--port", str(port), *more)


def channel(qs, name: str, definition: str, queue: str) -> None:
    zato("conn", "create", "amqp-channel", qs.path, "--name", name, "--def", definition, "--queue", queue,
         "--service", "dash.nobody")  # fmt: skip


def post(op: Operator, path: str) -> tuple[int, str]:
    r = op.http.post(op.url + path, headers={"X-CSRF-Token": op.csrf}, timeout=60)
    doc = r.json()
    return r.status_code, doc.get("result") or doc.get("error", r.text)


def dashboard_only(quickstart, **conf: dict) -> tuple:
    """A quickstart whose dashboard alone runs (nothing consumes the channels' queues), with
    `conf` sections merged into dashboard.conf; the cluster and an operator logged in."""
    qs = quickstart(servers=1, lb=False)
    for section, values in conf.items():
        qs._merge(os.path.join(qs.dashboard_dir, "config", "dashboard.conf"), section, values)
    qs.start("dashboard")
    return qs, Operator(f"http://127.0.0.1:{qs.dashboard_port}/", *qs.admin_auth)


def test_replay_with_the_broker_away_is_503_saying_it_could_not_be_reached(rabbit, quickstart):
    qs, op = dashboard_only(quickstart)
    proxy = TCPProxy(free_port())
    proxy.start()
    try:
        amqp_def(qs, "local", proxy.port, "--password", "guest")
        queue = parked(rabbit, 2)
        channel(qs, "orders", "local", queue)
        assert post(op, "api/channels/amqp/orders/replay") == (
            200,
            f"amqp-channel orders: 2 parked message(s) moved back to queue {queue!r};"
            f" 0 left in '{queue}.zato-parked'",
        )
        rabbit.publish(queue + ".zato-parked", "again")
    finally:
        proxy.stop()  # the broker goes away
    status, error = post(op, "api/channels/amqp/orders/replay")
    assert status == 503, error
    assert error.startswith(
        "replay parked amqp-channel orders: amqp-channel orders: cannot connect to the AMQP broker"
        f" amqp://guest@127.0.0.1:{proxy.port}/ (definition 'local'): "
    )
    assert error.endswith("; nothing moved")
    assert rabbit.count(queue + ".zato-parked") == 1  # still parked

    # The broker answers, and refuses: that is not the request's fault either (502), nor an outage.
    amqp_def(qs, "wrong", 5672, "--password", "not-guest")
    channel(qs, "refused", "wrong", queue)
    assert post(op, "api/channels/amqp/refused/replay") == (
        502,
        "replay parked amqp-channel refused: amqp-channel refused: the AMQP broker amqp://guest@127.0.0.1:5672/"
        " (definition 'wrong') refused the login: check the user name and password of amqp-def 'wrong';"
        " nothing moved",
    )


def test_actions_with_redis_away_are_503_saying_redis_could_not_be_reached(quickstart):
    redis_port = free_port()  # nothing listens there
    qs, op = dashboard_only(quickstart, kvdb={"url": f"redis://127.0.0.1:{redis_port}/0"})
    zato("conn", "create", "amqp-def", qs.path, "--name", "local", "--password", "guest")
    zato("conn", "create", "amqp-outgoing", qs.path, "--name", "out1", "--def", "local",
         "--exchange", "amq.topic", "--routing-key", "dash.nobody")  # fmt: skip
    answers = {
        path: post(op, path)
        for path in (
            "api/servers/server1/drain",
            "api/connectors/amqp-outgoing:out1/restart",
            "api/outgoing/amqp/out1/resend",
            "api/async/requeue",
            "api/modules/dash_mod/undeploy",
        )
    }
    refused = f"Error 111 connecting to 127.0.0.1:{redis_port}. Connection refused."
    assert answers == {
        "api/servers/server1/drain": (
            503,
            f"drain server server1: Redis could not be reached: operator drain: ConnectionError: {refused}",
        ),
        "api/connectors/amqp-outgoing:out1/restart": (
            503,
            "restart connector amqp-outgoing:out1: reaching Redis, which tells the servers of changes:"
            f" ConnectionError: {refused}",
        ),
        "api/outgoing/amqp/out1/resend": (
            503,
            "re-send parked amqp out1: Redis could not be reached: re-sending parked messages of outgoing"
            f" amqp 'out1': ConnectionError: {refused}",
        ),
        "api/async/requeue": (
            503,
            "queue parked invoke_async calls again: Redis could not be reached: invoke_async: queueing parked"
            f" calls again: ConnectionError: {refused}",
        ),
        "api/modules/dash_mod/undeploy": (
            503,
            "undeploy module dash_mod: reaching Redis, which tells the servers of changes: ConnectionError:"
            f" {refused}",
        ),
    }


class HeldProxy(TCPProxy):
    """A TCP proxy to RabbitMQ that accepts connections at once but forwards nothing until
    released: a replay through it waits in its connection handshake."""

    def __init__(self, port: int):
        super().__init__(port)
        self.accepted = 0
        self.released = threading.Event()

    def wrap(self, client):  # noqa: ANN001, ANN201 - a socket
        self.accepted += 1
        return client

    def _pipe(self, src, dst) -> None:  # noqa: ANN001 - sockets
        self.released.wait(60)
        TCPProxy._pipe(src, dst)


def test_a_second_replay_of_a_channel_while_one_runs_is_409_and_others_go_on(rabbit, quickstart):
    """A double click on Replay parked (or a second tab): the second is refused with a clear
    message while the first runs; another channel's replay is not held up; once the first
    ended, the channel can be replayed again. Before, both ran at once."""
    qs, op = dashboard_only(quickstart)
    held = HeldProxy(free_port())
    held.start()
    try:
        amqp_def(qs, "held", held.port, "--password", "guest")
        amqp_def(qs, "local", 5672, "--password", "guest")
        queue, other = parked(rabbit, 3), parked(rabbit, 1)
        channel(qs, "orders", "held", queue)
        channel(qs, "other", "local", other)
        first: dict = {}

        def replay_orders() -> None:
            r = requests.post(
                op.url + "api/channels/amqp/orders/replay",
                headers={"X-CSRF-Token": op.csrf},
                cookies=op.http.cookies,
                timeout=60,
            )
            first.update(status=r.status_code, doc=r.json())

        click = threading.Thread(target=replay_orders)
        click.start()
        wait_for(lambda: held.accepted, 30, what="the first replay connecting to the broker")
        status, error = post(op, "api/channels/amqp/orders/replay")
        assert status == 409, error
        assert error.startswith("replay parked amqp-channel orders: already running (started ")
        assert error.endswith(
            "s ago): try again once it has ended (its result is shown on the page that started it and in"
            " logs/dashboard.log)"
        )
        assert post(op, "api/channels/amqp/other/replay")[0] == 200  # another channel goes on
        held.released.set()
        click.join(60)
        assert first == {
            "status": 200,
            "doc": {
                "result": f"amqp-channel orders: 3 parked message(s) moved back to queue {queue!r};"
                f" 0 left in '{queue}.zato-parked'"
            },
        }
        assert held.accepted == 1  # the refused click never reached the broker
        assert rabbit.count(queue) == 3
        rabbit.publish(queue + ".zato-parked", "again")
        assert post(op, "api/channels/amqp/orders/replay")[0] == 200  # the first one's hold is gone
        assert rabbit.count(queue) == 4
    finally:
        held.released.set()
        held.stop()


def test_replay_against_a_broker_that_never_answers_is_503_not_an_internal_error(rabbit, quickstart):
    """Something accepts the connection and never answers the AMQP handshake (a hung broker):
    pika gives up after its 15 s and says so. Before, its timeout was not among the broker
    errors: 500 with bottle's HTML page, and dashboard.log had pika's ERROR lines and traceback
    (each failed click with the broker down too) besides the dashboard's own line."""
    qs, op = dashboard_only(quickstart)
    hung = HeldProxy(free_port())  # never released
    hung.start()
    try:
        amqp_def(qs, "hung", hung.port, "--password", "guest")
        channel(qs, "orders", "hung", parked(rabbit, 1))
        status, error = post(op, "api/channels/amqp/orders/replay")
    finally:
        hung.released.set()
        hung.stop()
    assert status == 503, error
    assert error.startswith(
        "replay parked amqp-channel orders: amqp-channel orders: cannot connect to the AMQP broker"
        f" amqp://guest@127.0.0.1:{hung.port}/ (definition 'hung'): AMQPConnectorStackTimeout: Timeout during"
        " AMQP handshake"
    )
    assert error.endswith("; nothing moved")
    with open(os.path.join(qs.dashboard_dir, "logs", "dashboard.log")) as f:
        log = f.read()
    assert "Traceback" not in log and " pika." not in log, log
    said = error.removeprefix("replay parked amqp-channel orders: ")
    assert f"dashboard: user {qs.admin_auth[0]}: replay parked amqp-channel orders failed: {said}" in log


def test_replay_reaches_a_tls_broker_with_a_private_ca_given_in_dashboard_conf(rabbit, quickstart, tmp_path):
    from tests.tls_proxy import tls_broker

    with tls_broker(str(tmp_path)) as (port, ca_file):
        qs, op = dashboard_only(quickstart)
        amqp_def(qs, "tls", port, "--host", "localhost", "--use-tls", "true", "--password", "guest")
        queue = parked(rabbit, 2)
        channel(qs, "orders", "tls", queue)
        # Without it the broker is not trusted: said so (502: it answered), not "unreachable".
        status, error = post(op, "api/channels/amqp/orders/replay")
        assert status == 502, error
        assert error.startswith(
            f"replay parked amqp-channel orders: amqp-channel orders: the AMQP broker amqps://guest@localhost:{port}/"
            " (definition 'tls') is not trusted: SSLCertVerificationError: "
        )
        assert error.endswith(
            "(the CA that signed its certificate goes in [tls] ca_file: server.conf's for the CLI,"
            " dashboard.conf's for the dashboard); nothing moved"
        )

        qs.stop("dashboard")
        conf = os.path.join(qs.dashboard_dir, "config", "dashboard.conf")
        qs._merge(conf, "tls", {"ca_file": ca_file})
        qs.start("dashboard")
        op = Operator(op.url, *qs.admin_auth)
        assert post(op, "api/channels/amqp/orders/replay") == (
            200,
            f"amqp-channel orders: 2 parked message(s) moved back to queue {queue!r};"
            f" 0 left in '{queue}.zato-parked'",
        )
        assert rabbit.count(queue) == 2


@needs_browser
def test_the_page_says_what_runs_and_that_it_failed_not_refused(rabbit, quickstart, browser):  # noqa: F811
    """In the browser: a click's action shows as working until its answer comes (a replay takes
    a while: before, the page said nothing meanwhile, and a second click looked needed); an
    action that could not reach what it needs reads 'failed: ...' (was 'refused: ...', as for a
    bad request); a dashboard that does not answer says so (before: nothing at all)."""
    qs, _op = dashboard_only(quickstart)
    held = HeldProxy(free_port())
    held.start()
    try:
        amqp_def(qs, "held", held.port, "--password", "guest")
        queue = parked(rabbit, 1)
        channel(qs, "orders", "held", queue)
        browser.get(f"http://127.0.0.1:{qs.dashboard_port}/")
        login(browser, *qs.admin_auth)
        wait_for(lambda: text(browser, "#cluster") == qs.cluster, 30, what="the overview page")
        question = "Put the 1 message(s) parked by orders back on its queue, for its service to run again"
        click = f"window.confirm = () => true; act('api/channels/amqp/orders/replay', '{question}?')"
        browser.execute_script(click)
        wait_for(lambda: held.accepted, 30, what="the replay connecting to the broker")
        working = text(browser, "#message")
        assert working.startswith("working (sent ") and working.endswith(f" UTC): {question}"), working
        assert browser.execute_script("return document.getElementById('message').className") == "warn"
        held.released.set()
        result = (
            f"amqp-channel orders: 1 parked message(s) moved back to queue {queue!r};"
            f" 0 left in '{queue}.zato-parked'"
        )
        wait_for(lambda: text(browser, "#message") == result, 30, what="the result on the page")
    finally:
        held.released.set()
        held.stop()  # the broker goes away

    browser.execute_script(click)
    wait_for(lambda: text(browser, "#message").startswith("failed: "), 30, what="the failure on the page")
    assert text(browser, "#message").startswith(
        "failed: replay parked amqp-channel orders: amqp-channel orders: cannot connect to the AMQP broker"
    )
    assert browser.execute_script("return document.getElementById('message').className") == "bad"

    qs.stop("dashboard")
    browser.execute_script(click)
    wait_for(
        lambda: text(browser, "#message") == "failed: no answer from the dashboard (Failed to fetch)",
        30,
        what="the dashboard's silence on the page",
    )


@needs_browser
def test_an_open_page_whose_session_ended_goes_back_to_the_login_form(quickstart, browser):  # noqa: F811
    """Sessions live in the dashboard's memory: after it restarted (or a session expired, or a
    logout in another tab) an open page said 'reconnecting...' for good, its actions answered
    'refused: log in first'. Now it goes back to the login form once the dashboard answers."""
    qs, _op = dashboard_only(quickstart)
    url = f"http://127.0.0.1:{qs.dashboard_port}/"
    browser.get(url)
    login(browser, *qs.admin_auth)
    wait_for(lambda: text(browser, "#live").startswith("live"), 30, what="the page live")
    qs.stop("dashboard")
    wait_for(
        lambda: text(browser, "#live").startswith("reconnecting... "),
        30,
        what="the page saying it reconnects",
    )
    qs.start("dashboard")
    wait_for(lambda: browser.current_url == url + "login", 60, what="the login form")
    login(browser, *qs.admin_auth)
    wait_for(lambda: text(browser, "#live").startswith("live"), 30, what="the page live again")
