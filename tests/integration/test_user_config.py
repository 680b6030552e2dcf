"""Zato's user config on a real two-server quickstart behind its LB: services read
`self.config.FILE.SECTION.KEY` from DIR/user-conf, an edit applies on every server without a
restart, a broken edit keeps the last good one and is logged without its secret, and services
cannot change what the others read."""

from __future__ import annotations

import os

import pytest
import requests

from tests.support import wait_for, zato

SERVICES = """
from zato.server.service import Service


class Settings(Service):
    name = "conf.settings"

    def handle(self):
        api = self.config.airports.api
        self.response.payload = {
            "base_url": api.base_url,
            "timeout": int(api.timeout),
            "t1": self.config.user.airports.terminals.gate_prefixes.T1,
            "codes": self.config.airports.terminals.codes,
        }


class Typo(Service):
    name = "conf.typo"

    def handle(self):
        self.response.payload = {"timeout": self.config.airports.api.timout}


class Read(Service):
    name = "conf.read"

    def handle(self):
        p = self.request.http.params
        self.response.payload = {"value": self.config[p["file"]][p["section"]][p["key"]]}


class Legacy(Service):
    # Zato's older accessor, as its docs show it: self.user_config.LABEL.FILE.SECTION.KEY
    name = "conf.legacy"

    def handle(self):
        hello = self.user_config.data1.my1.hello
        self.response.payload = {
            "a_string": hello.a_string,
            "a_list": hello.a_list,
            "level": self.user_config["Ops"].ops.main.level,
        }


class LegacyRead(Service):
    name = "conf.legacy-read"

    def handle(self):
        self.response.payload = {"value": getattr(self.user_config, self.request.http.params["label"])}


class Overwrite(Service):
    name = "conf.overwrite"

    def handle(self):
        self.config.airports.api.timeout = "1"
"""

READ = "/conf/read/{file}/{section}/{key}"

AIRPORTS = """\
[api]
base_url = https://api.airport-ops.example.com
timeout = 30
token = s3cret-token-1
[terminals]
codes = A, B
[[gate_prefixes]]
T1 = A
"""


MY1 = """\
[hello]
a_string=My string
a_list=sample,list,with,elements
"""


def user_config_stanza(qs) -> None:  # noqa: ANN001
    """Zato's [user_config] stanza in each server.conf: a file next to it by a relative path,
    a shared one by an absolute path (its label in capitals), and one that is not there."""
    os.makedirs(os.path.join(qs.path, "legacy"))
    ops = os.path.join(qs.path, "legacy", "ops.ini")
    with open(ops, "w") as f:
        f.write("[main]\nlevel = high\n")
    for name in qs.server_names:
        config = os.path.join(qs.server_dir(name), "config")
        with open(os.path.join(config, "my1.ini"), "w") as f:
            f.write(MY1)
        with open(os.path.join(config, "server.conf"), "a") as f:
            f.write(f"\n[user_config]\ndata1 = ./my1.ini\nOps = {ops}\nmissing = ./nowhere.ini\n")


@pytest.fixture(scope="module")
def cluster(module_quickstart):
    qs = module_quickstart(servers=2)
    with open(os.path.join(qs.path, "user-conf", "airports.ini"), "w") as f:
        f.write(AIRPORTS)
    user_config_stanza(qs)
    qs.start()
    qs.deploy("conf_services", SERVICES)
    qs.open_channels("conf", ("settings", "typo", "overwrite", "legacy", "legacy-read"))
    zato("channel", "create", qs.path, "--name", "conf-read", "--url-path", READ, "--service", "conf.read")
    return qs


def urls(qs) -> list[str]:  # noqa: ANN001
    return [qs.server_url(n) for n in qs.server_names] + [qs.lb_url]


def edit(qs, text: str) -> None:  # noqa: ANN001
    path = os.path.join(qs.path, "user-conf", "airports.ini")
    with open(path, "w") as f:
        f.write(text)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a later edit, whatever the clock


def timeouts(qs) -> set:  # noqa: ANN001
    return {requests.get(f"{u}/conf/settings", timeout=5).json()["timeout"] for u in urls(qs)}


def test_services_read_the_files_on_every_server(cluster):
    for url in urls(cluster):
        r = requests.get(f"{url}/conf/settings", timeout=5)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "base_url": "https://api.airport-ops.example.com",
            "timeout": 30,
            "t1": "A",
            "codes": ["A", "B"],
        }


def test_an_edit_applies_on_every_server_without_a_restart(cluster):
    pids = {n: cluster.pid(n) for n in cluster.server_names}
    edit(cluster, AIRPORTS.replace("timeout = 30", "timeout = 45"))
    wait_for(lambda: timeouts(cluster) == {45}, timeout=15, what="every server reads timeout 45")
    assert {n: cluster.pid(n) for n in cluster.server_names} == pids


def test_a_broken_edit_keeps_the_last_good_one_and_is_logged_without_its_secret(cluster):
    edit(cluster, AIRPORTS.replace("timeout = 30", "timeout = 60") + "token s3cret-token-2 pasted here\n")
    wait_for(  # a worker looks at the files when a service reads them
        lambda: timeouts(cluster) == {45} and cluster.server_logs().count("line 9: neither a [section]") >= 2,
        timeout=15,
        what="each server logs the broken line",
    )
    assert timeouts(cluster) == {45}  # the last good file, not half of the broken one
    assert "s3cret-token" not in cluster.server_logs("*.log")
    edit(cluster, AIRPORTS.replace("timeout = 30", "timeout = 60"))
    wait_for(lambda: timeouts(cluster) == {60}, timeout=15, what="the mended file applies")


def test_a_missing_key_and_a_write_are_the_services_500_naming_what(cluster):
    for name, said in (
        ("typo", "user config airports.api has no 'timout'"),
        ("overwrite", "user config is read-only: edit its file instead"),
    ):
        r = requests.get(f"{cluster.lb_url}/conf/{name}", timeout=5)
        assert r.status_code == 500, r.text
        wait_for(lambda: said in cluster.server_logs(), timeout=10, what=said)  # noqa: B023
    assert requests.get(f"{cluster.lb_url}/conf/settings", timeout=5).status_code == 200


def test_zatos_user_config_stanza_is_self_user_config(cluster):
    """Zato's docs ("Where to keep configuration"): server.conf's [user_config] maps labels to
    INI files, which services read as self.user_config.LABEL.FILE.SECTION.KEY, a
    comma-separated value as a list. Before: the service's 500, `'Legacy' object has no
    attribute 'user_config'`."""
    for url in urls(cluster):
        r = requests.get(f"{url}/conf/legacy", timeout=5)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "a_string": "My string",
            "a_list": ["sample", "list", "with", "elements"],
            "level": "high",
        }


def test_a_label_not_given_or_whose_file_is_missing_is_named_in_the_log(cluster):
    for label, said in (
        ("nothing", "self.user_config has no 'nothing': server.conf's [user_config] gives no such label"),
        ("missing", "self.user_config.missing: its file "),
    ):
        r = requests.get(f"{cluster.lb_url}/conf/legacy-read", params={"label": label}, timeout=5)
        assert r.status_code == 500, r.text
        wait_for(lambda: said in cluster.server_logs(), timeout=10, what=said)  # noqa: B023
    assert "nowhere.ini cannot be read: No such file or directory" in cluster.server_logs()


def read(qs, url: str, file: str, section: str, key: str) -> object:  # noqa: ANN001
    r = requests.get(f"{url}/conf/read/{file}/{section}/{key}", timeout=5)
    return r.json()["value"] if r.status_code == 200 else r.status_code


def everywhere(qs, file: str, section: str, key: str) -> set:  # noqa: ANN001
    return {read(qs, u, file, section, key) for u in urls(qs)}


def test_a_file_deployed_to_the_cluster_is_read_by_every_server_and_follows_its_redeploys(cluster, tmp_path):
    crm = tmp_path / "crm.ini"
    crm.write_text("[db]\nname = crm-1\n")
    out = zato("deploy", cluster.path, str(crm)).stdout
    assert "user config crm deployed: every server reads it as self.config.crm" in out
    wait_for(
        lambda: everywhere(cluster, "crm", "db", "name") == {"crm-1"}, timeout=10, what="crm-1 everywhere"
    )
    status = zato("cluster", "status", cluster.path, check=False).stdout
    assert "User config deployed to the cluster (self.config.NAME): crm" in status
    crm.write_text("[db]\nname = crm-2\n")
    zato("deploy", cluster.path, str(crm))
    wait_for(
        lambda: everywhere(cluster, "crm", "db", "name") == {"crm-2"}, timeout=10, what="crm-2 everywhere"
    )

    # A server started later reads it at start.
    cluster.stop("server2")
    cluster.start("server2")
    assert read(cluster, cluster.server_url("server2"), "crm", "db", "name") == "crm-2"

    # A server's own file of that name wins on that server, and its log says so.
    own = os.path.join(cluster.path, "user-conf", "crm.ini")
    with open(own, "w") as f:
        f.write("[db]\nname = crm-local\n")
    wait_for(
        lambda: everywhere(cluster, "crm", "db", "name") == {"crm-local"}, timeout=10, what="the own file"
    )
    assert "user config crm: this server's file" in cluster.server_logs()
    os.remove(own)
    wait_for(lambda: everywhere(cluster, "crm", "db", "name") == {"crm-2"}, timeout=10, what="deployed again")

    assert zato("undeploy", cluster.path, "crm.ini").stdout.startswith("undeployed user config crm")
    wait_for(
        lambda: everywhere(cluster, "crm", "db", "name") == {500}, timeout=10, what="crm gone everywhere"
    )


def test_a_broken_file_is_refused_at_deploy_and_in_pickup_with_its_line(cluster, tmp_path):
    bad = tmp_path / "erp.ini"
    bad.write_text("[db]\nname = erp\nnot a line\n")
    proc = zato("deploy", cluster.path, str(bad), check=False)
    assert proc.returncode == 1
    assert "user config erp: line 3: neither a [section], a key = value, nor a # comment" in proc.stderr
    deep = tmp_path / "deep.ini"
    deep.write_text("".join("[" * i + f"s{i}" + "]" * i + "\n" for i in range(1, 1500)))
    proc = zato("deploy", cluster.path, str(deep), check=False)
    assert proc.returncode == 1 and "user config deep: sections nested too deeply" in proc.stderr, proc.stderr
    pickup = os.path.join(cluster.server_dir("server1"), "pickup")
    with open(os.path.join(pickup, "erp.conf"), "w") as f:
        f.write("[db]\nname = erp\nnot a line\n")
    wait_for(lambda: "erp.conf is broken, not deployed" in cluster.server_logs(), timeout=15, what="reported")
    with open(os.path.join(pickup, "erp.conf"), "w") as f:
        f.write("[db]\nname = erp-picked\n")
    wait_for(lambda: everywhere(cluster, "erp", "db", "name") == {"erp-picked"}, timeout=15, what="picked up")
    assert os.path.exists(os.path.join(pickup, "processed", "erp.conf"))


def test_the_admin_api_deploys_and_undeploys_a_user_config_file(cluster):
    """POST /zato/admin/deploy?name=NAME.ini with the file as the body, DELETE
    /zato/admin/deploy/NAME.ini: as `zato deploy` / `zato undeploy`. Before: refused as a module."""
    admin = requests.Session()
    admin.auth = cluster.admin_auth
    url = cluster.server_url("server1") + "/zato/admin/deploy"
    r = admin.post(url, params={"name": "fx.ini"}, data=b"[rates]\neur = 4.31\n", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "user_config": "fx",
        "result": "user config fx deployed: every server reads it as self.config.fx",
    }
    wait_for(lambda: everywhere(cluster, "fx", "rates", "eur") == {"4.31"}, timeout=10, what="fx everywhere")
    bad = admin.post(url, params={"name": "fx.ini"}, data=b"[rates\neur = 1\n", timeout=10)
    assert bad.status_code == 400 and "line 1" in bad.text, bad.text
    assert admin.delete(url + "/fx.ini", timeout=10).status_code == 200
    wait_for(
        lambda: everywhere(cluster, "fx", "rates", "eur") == {500}, timeout=10, what="fx gone everywhere"
    )
    gone = admin.delete(url + "/fx.ini", timeout=10)
    assert gone.status_code == 404 and "no user config fx is deployed" in gone.text
