"""Cross-site request forgery against the admin API, in a real headless browser (Debian's
chromium, as tests/integration/test_dashboard.py drives it). The browser has logged in to the
admin API with HTTP Basic Auth (an operator looked at /zato/admin/services); then a page of
another site posts a form to /zato/admin/deploy. Browsers send the cached credentials with
it. Before, the module was deployed: any site the operator visited could run code on every
server. Now the admin API refuses it (403) and nothing is deployed."""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.integration.test_dashboard import browser, needs_browser  # noqa: F401 - the fixture
from tests.support import free_port, wait_for

pytestmark = needs_browser
MODULE = "csrf_probe"
# The form's one field, sent as "NAME=VALUE" (enctype text/plain): its name is the module's
# source, ending in a comment so that the "=" after it is Python too.
SOURCE = f"from zato.server.service import Service\nclass C(Service):\n    name = '{MODULE}.svc'\n#"


@pytest.fixture(scope="module")
def qs(module_quickstart):
    cluster = module_quickstart(servers=1, lb=False)
    cluster.start()
    return cluster


class ServedPage:
    """One HTML page, answered to every GET on a port of its own."""

    def __init__(self, page: bytes) -> None:
        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Page)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class OtherSite:
    """A page on another origin (localhost, not 127.0.0.1) that posts the form at once."""

    def __init__(self, target: str) -> None:
        page = (
            f'<html><body><form id="f" method="POST" enctype="text/plain" action="{target}">'
            f'<textarea name="{html.escape(SOURCE)}"></textarea></form>'
            "<script>document.getElementById('f').submit()</script></body></html>"
        ).encode()

        self.served = ServedPage(page)
        self.port = self.served.port

    def close(self) -> None:
        self.served.close()


def _answer(page: str) -> str | None:
    return page if "zato_env" in page or '"module"' in page else None


def test_a_page_of_another_site_cannot_deploy_with_the_browsers_admin_login(qs, browser):  # noqa: F811
    base = qs.server_url("server1")
    port = int(base.rsplit(":", 1)[1])
    user, password = qs.admin_auth
    browser.get(f"http://{user}:{password}@127.0.0.1:{port}/zato/admin/services")
    assert "zato.ping" in browser.page_source  # logged in: the browser keeps the credentials
    site = OtherSite(f"http://127.0.0.1:{port}/zato/admin/deploy?name={MODULE}")
    try:
        browser.get(f"http://localhost:{site.port}/")
        wait_for(lambda: "/zato/admin/deploy" in browser.current_url, 15, what="the form to be posted")
        answer = wait_for(lambda: _answer(browser.page_source), 15, what="the admin API's answer")
    finally:
        site.close()
    services = requests.get(base + "/zato/admin/services", auth=qs.admin_auth, timeout=10).json()["services"]
    assert f"{MODULE}.svc" not in services  # before: deployed, {"module": "csrf_probe", ...}
    assert "takes no requests from other sites' web pages (Sec-Fetch-Site: cross-site)" in answer


class FramingSite:
    """A page of the dashboard's own site (127.0.0.1, another port: SameSite looks at the host,
    not the port; in production, any host of the dashboard's domain) that shows `target` in a
    frame and says in its title when the frame has loaded."""

    def __init__(self, target: str) -> None:
        page = (
            f'<html><body><iframe id="f" src="{target}" width="1000" height="800"'
            " onload=\"document.title='frame loaded'\"></iframe></body></html>"
        ).encode()

        self.served = ServedPage(page)
        self.port = self.served.port

    def close(self) -> None:
        self.served.close()


def test_a_page_of_the_same_site_cannot_show_the_logged_in_dashboard_in_a_frame(quickstart, browser):  # noqa: F811
    """Clickjacking: before, a page on another port of the dashboard's host framed the
    dashboard logged in (the SameSite=Strict cookie goes to same-site frames), its buttons
    under the page's own for the operator to click. Now the browser refuses to show it framed
    (X-Frame-Options DENY, CSP frame-ancestors 'none')."""
    from selenium.webdriver.common.by import By

    from tests.integration.test_dashboard import login

    qs = quickstart(servers=1, lb=False)
    qs.start("server1", "dashboard")
    url = f"http://127.0.0.1:{qs.dashboard_port}/"
    browser.get(url)
    login(browser, *qs.admin_auth)
    wait_for(lambda: browser.find_elements(By.ID, "logout"), 15, what="the dashboard, logged in")
    site = FramingSite(url)
    try:
        browser.get(f"http://127.0.0.1:{site.port}/")
        wait_for(lambda: browser.title == "frame loaded", 15, what="the frame's load")
        browser.switch_to.frame("f")
        framed = browser.page_source
        browser.switch_to.default_content()
    finally:
        site.close()
    assert 'id="logout"' not in framed and qs.cluster not in framed, framed[:500]
