"""The dashboard's actions as an operator clicks them, in a real headless browser (Debian's
chromium through Selenium) against a real cluster: a module edited after it was chosen for
Deploy."""

from __future__ import annotations

import os

from tests.integration.test_dashboard import browser, login, needs_browser, text  # noqa: F401 - browser: a fixture
from tests.support import cluster_name, wait_for


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
    browser.find_element(By.ID, "deploy").click()
    wait_for(lambda: answered(browser), 30, what="the second click's answer")
    assert answered(browser) == (
        "not sent: mended.py cannot be read (NotReadableError): it was changed or removed since it"
        " was chosen; choose it again"
    )
    assert browser.execute_script("return document.getElementById('message').className") == "bad"

    browser.find_element(By.ID, "deploy-file").send_keys(str(module))  # chosen again
    browser.find_element(By.ID, "deploy").click()
    wait_for(lambda: answered(browser).startswith("deployed module mended version 2"), 30, what="version 2")
