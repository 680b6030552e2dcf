"""Bad command-line input gets one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from dataclasses import dataclass

import pytest

from zato.cli.main import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def zato(capsys):
    """Run the CLI in this process (fast); same exit codes and output as the real command."""

    def run(*args: str, check: bool = True) -> Result:
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse usage errors
            code = int(e.code or 0)
        out, err = capsys.readouterr()
        result = Result(code, out, err)
        if check:
            assert code == 0, f"zato {args} exited {code}: {out}{err}"
        return result

    return run


def one_line_error(proc, *fragments: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zato: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture
def qs_dir(tmp_path, zato):
    path = tmp_path / "qs"
    out = zato(
        "quickstart", "create", str(path), "--servers", "2", "--cluster", "unit-qs", "--base-port", "31010"
    )
    assert "zato start" in out.stdout
    return path


def test_quickstart_layout_and_secrets(qs_dir, zato):
    assert json.loads((qs_dir / ".zato").read_text())["component"] == "quickstart"
    confs = [qs_dir / "server1/config/server.conf", qs_dir / "server2/config/server.conf"]
    texts = [c.read_text() for c in confs]
    for conf in confs + [qs_dir / "load-balancer/config/lb.conf"]:
        assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    secret = [line for line in texts[0].splitlines() if line.startswith("cluster_secret")]
    assert secret and secret[0] in texts[1]  # one secret for the whole cluster
    assert "port = 31010" in texts[0] and "port = 31011" in texts[1]
    assert (qs_dir / "server1/pickup").is_dir() and (qs_dir / "odb.db").is_file()


def test_quickstart_refuses_a_non_empty_dir(qs_dir, zato):
    """Run twice, it says what is there and how to start it (before: 'exists and is not an empty
    directory', as of any folder); a folder holding something else is refused as before."""
    one_line_error(
        zato("quickstart", "create", str(qs_dir), check=False),
        f"{qs_dir}: already holds a quickstart (zato start {qs_dir} starts it; remove the folder",
    )
    one_line_error(
        zato("create", "server", str(qs_dir / "server2"), "--join", str(qs_dir), check=False),
        f"{qs_dir / 'server2'}: already holds a server (zato start {qs_dir / 'server2'} starts it",
    )
    (qs_dir / "user-conf" / "a.ini").write_text("[a]\n")
    one_line_error(
        zato("quickstart", "create", str(qs_dir / "user-conf"), check=False),
        "user-conf: exists and is not an empty directory",
    )


def test_quickstart_rejects_bad_numbers(tmp_path, zato):
    one_line_error(
        zato("quickstart", "create", str(tmp_path / "a"), "--servers", "0", check=False), "--servers"
    )
    one_line_error(
        zato("quickstart", "create", str(tmp_path / "b"), "--base-port", "70000", check=False), "--base-port"
    )


def test_quickstart_in_zato_3_form_says_this_commands_form(tmp_path, zato):
    """Zato 3.2's docs: `zato quickstart create ~/env/qs-1 sqlite localhost 6379 --kvdb_password ''
    --verbose`. Before: argparse's `unrecognized arguments: sqlite localhost 6379 ...`, no word
    of what to type here. Now the same command, as this one takes it; nothing is created."""
    path = tmp_path / "qs-1"
    line = one_line_error(
        zato(
            "quickstart",
            "create",
            str(path),
            "sqlite",
            "localhost",
            "6379",
            "--kvdb_password",
            "pw-z3",
            "--verbose",
            check=False,
        ),  # fmt: skip
        "'sqlite localhost 6379' is Zato 3.2's form of this command",
        f"here: zato quickstart create {path} --redis redis://localhost:6379/0 (SQLite in DIR is the default",
    )
    assert "pw-z3" not in line and not path.exists()
    line = one_line_error(
        zato("quickstart", "create", str(path), "postgresql", "10.0.0.5", "6380", check=False)
    )
    assert "--redis redis://10.0.0.5:6380/0 --odb URL (postgresql://USER:PASSWORD@HOST/DB)" in line
    assert "zato3" not in zato("quickstart", "create", "--help").stdout


def test_usage_errors_exit_2(tmp_path, zato):
    proc = zato("quickstart", "create", str(tmp_path / "x"), "--servers", "many", check=False)
    assert proc.returncode == 2 and "invalid int value" in proc.stderr
    assert zato("start", check=False).returncode == 2


@pytest.mark.parametrize("command", [("start",), ("stop",), ("service", "invoke")])
@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf", "soon", "1e300"])
def test_a_timeout_that_is_no_duration_is_a_usage_error_not_a_traceback(qs_dir, zato, command, value):
    """Before: `--timeout nan` (or -1) reached the socket and ended in a ValueError traceback."""
    name = ("zato.ping",) if command[0] == "service" else ()
    proc = zato(*command, str(qs_dir / "server1"), *name, "--timeout", value, check=False)
    assert proc.returncode == 2 and "argument --timeout" in proc.stderr and "Traceback" not in proc.stderr


def test_start_and_info_name_what_is_wrong_with_the_dir(tmp_path, zato):
    one_line_error(zato("start", str(tmp_path / "missing"), check=False), "no such directory")
    one_line_error(zato("info", str(tmp_path), check=False), "not a Zato component directory")


def test_a_file_or_a_marker_that_cannot_be_read_is_named(tmp_path, zato):
    """A file given for DIR was 'no such directory'; a .zato that is a directory was
    IsADirectoryError's traceback."""
    a_file = tmp_path / "server.conf"
    a_file.write_text("[main]\n")
    (tmp_path / "odd" / ".zato").mkdir(parents=True)
    for command in ("start", "stop", "info"):
        one_line_error(zato(command, str(a_file), check=False), f"{a_file}: not a directory")
        one_line_error(
            zato(command, str(tmp_path / "odd"), check=False), ".zato: cannot read: Is a directory"
        )


def test_a_quickstart_directory_holding_no_component_says_so(tmp_path, zato):
    """One whose members are gone (or were never made): zato start, stop and info said nothing
    and exited 0, as if it had started, stopped or shown a cluster."""
    path = tmp_path / "qs"
    path.mkdir()
    (path / ".zato").write_text('{"component": "quickstart"}\n')
    for command in (("start",), ("stop",), ("info",), ("info", "--urls")):
        one_line_error(
            zato(*command, str(path), check=False), f"{path}: a quickstart directory holding no component"
        )


def test_a_pidfile_holding_no_pid_is_called_so(qs_dir, zato):
    """An empty pidfile, or one that is not a number, was 'pid -1' ('pid -1 is not running')."""
    pidfile = qs_dir / "server1/pidfile"
    pidfile.write_text("garbage\n")
    out = zato("stop", str(qs_dir / "server1")).stdout
    assert "server server1 was not running; removed a stale pidfile (it held no pid)" in out, out
    conf = qs_dir / "server1/config/server.conf"
    with socket.socket() as taken:  # zato start stops at its port, after it has removed the pidfile
        taken.bind(("127.0.0.1", 0))
        conf.write_text(conf.read_text().replace("port = 31010", f"port = {taken.getsockname()[1]}"))
        pidfile.write_text("")
        proc = zato("start", str(qs_dir / "server1"), check=False)
    one_line_error(proc, "is not free")
    assert f"removed a stale pidfile {pidfile} (it holds no pid)" in proc.stdout, proc.stdout
    assert "pid -1" not in proc.stdout and not pidfile.exists()


def test_start_fg_of_a_quickstart_names_what_it_runs(qs_dir, zato):
    """It said 'give a server or load-balancer directory': a dashboard runs in the foreground too."""
    one_line_error(
        zato("start", str(qs_dir), "--fg", check=False),
        "--fg runs one component; give a server, load-balancer or dashboard directory",
    )


def test_bad_config_value_is_named(qs_dir, zato):
    conf = qs_dir / "server1/config/server.conf"
    conf.write_text(conf.read_text().replace("port = 31010", "port = eleven"))
    line = one_line_error(zato("start", str(qs_dir / "server1"), check=False), "server.conf", "[main] port")
    assert "eleven" in line


def test_info_of_a_stopped_cluster(qs_dir, zato):
    data = json.loads(zato("info", "--json", str(qs_dir)).stdout)
    kinds = [m["kind"] for m in data["members"]]
    assert kinds == ["server", "server", "dashboard", "load-balancer"]
    assert {m["state"] for m in data["members"]} == {"stopped"}
    text = zato("info", str(qs_dir / "server2")).stdout
    assert re.search(r"\n  state +stopped\n", text) and re.search(r"\n  port +31011\n", text), text
    assert "password" not in text and "secret" not in text


def test_info_prints_every_value_in_one_column(qs_dir, zato):
    """Keys longer than 8 characters (user-conf, alive_url, stats_username) pushed their values
    out of line with the others."""
    for path in (qs_dir, qs_dir / "server1", qs_dir / "load-balancer"):
        text = zato("info", str(path)).stdout
        rows = [re.match(r"  (\S+) +(\S.*)$", line) for line in text.splitlines() if line.startswith("  ")]
        columns = {m.group(1): m.start(2) for m in rows if m and not m.group(0).startswith("    ")}
        assert "state" in columns and ("user-conf" in columns or "stats_username" in columns), text
        assert len(set(columns.values())) == 1, text


def test_stop_reports_a_stale_pidfile(qs_dir, zato):
    pidfile = qs_dir / "server1/pidfile"
    pidfile.write_text("4194000\n")  # no such process
    out = zato("stop", str(qs_dir / "server1")).stdout
    assert "removed a stale pidfile" in out and not pidfile.exists()
    assert "is not running" in zato("stop", str(qs_dir / "server1")).stdout


def test_create_server_needs_a_cluster(tmp_path, zato):
    one_line_error(zato("create", "server", str(tmp_path / "s"), check=False), "--odb and --cluster")


def test_create_server_before_its_cluster_says_to_make_the_cluster(tmp_path, zato):
    """docs/multi-host.md's `zato create cluster` step left out: the ODB not made yet was
    'ODB error: (sqlite3.OperationalError) no such table: zato_cluster', leaving an empty SQLite
    file; an ODB without that cluster said it did not exist, and not how to make it."""
    db = tmp_path / "odb.db"
    url = f"sqlite:///{db}"

    def create() -> Result:
        return zato("create", "server", str(tmp_path / "s"), "--odb", url, "--cluster", "hosts", check=False)

    make_it = "make it first: zato create cluster ODB_URL hosts"
    one_line_error(create(), f"the ODB at {url} does not exist yet", make_it)
    assert not db.exists()
    db.touch()  # a database with no tables (PostgreSQL's CREATE DATABASE, or an empty file)
    one_line_error(create(), "holds no cluster yet", make_it)
    zato("create", "cluster", url, "other")
    one_line_error(create(), "cluster 'hosts' does not exist in the ODB (it has 'other')", make_it)
    zato("create", "cluster", url, "hosts")
    assert "server s of cluster hosts created" in create().stdout


def test_build_a_cluster_by_hand(tmp_path, zato):
    url = f"sqlite:///{tmp_path}/db/odb.db"
    assert "ODB schema ready" in zato("create", "odb", url).stdout
    assert "cluster hand created" in zato("create", "cluster", url, "hand").stdout
    assert "already exists" in zato("create", "cluster", url, "hand").stdout
    s1 = str(tmp_path / "s1")
    zato("create", "server", s1, "--odb", url, "--cluster", "hand", "--port", "31100", "--name", "alpha")
    zato("create", "server", str(tmp_path / "s2"), "--join", s1, "--port", "31101")
    zato("create", "load-balancer", str(tmp_path / "lb"), "--join", s1, "--port", "31199")
    one_line_error(
        zato("create", "server", str(tmp_path / "s3"), "--join", s1, "--name", "alpha", check=False),
        "server 'alpha' already exists",
    )
    clash = zato("create", "server", str(tmp_path / "s4"), "--join", s1, "--port", "31100", check=False)
    one_line_error(
        clash, "server 'alpha' of cluster 'hand' is already at 127.0.0.1:31100: choose another --port"
    )
    assert not (tmp_path / "s4").exists()  # nothing left to clean up
    s2 = (tmp_path / "s2/config/server.conf").read_text()
    secret = [
        line for line in (tmp_path / "s1/config/server.conf").read_text().splitlines() if "secret" in line
    ]
    assert secret[0] in s2 and "name = s2" in s2
    assert secret[0] in (tmp_path / "lb/config/lb.conf").read_text()  # it verifies the servers
    assert re.search(r"\n  kind +load-balancer\n", zato("info", str(tmp_path / "lb")).stdout)
    one_line_error(zato("create", "odb", "nonsense", check=False), "is not a database URL")
    refused = zato("create", "odb", "zato:s3cret-pw@db.example.com/zato", check=False)  # no scheme
    one_line_error(refused, "ODB URL '******@db.example.com/zato' is not a database URL")
    assert "s3cret-pw" not in refused.stdout + refused.stderr


def test_bind_every_interface_and_announce_one_address(tmp_path, zato):
    """A server on a real host binds 0.0.0.0 and announces the address peers reach it at: the
    ODB and the cluster see the announced one; binding 0.0.0.0 without announcing is refused."""
    from zato.config.settings import load_lb_settings, load_server_settings
    from zato.odb import api as odb_api
    from zato.odb.engine import ODB

    url = f"sqlite:///{tmp_path}/odb.db"
    zato("create", "cluster", url, "hosts")
    s0 = str(tmp_path / "s0")
    refused = zato("create", "server", s0, "--odb", url, "--cluster", "hosts", "--host", "::", check=False)
    one_line_error(refused, "--announce-host")
    s1 = str(tmp_path / "s1")
    zato("create", "server", s1, "--odb", url, "--cluster", "hosts", "--host", "0.0.0.0",
         "--announce-host", "10.0.0.11", "--port", "31200")  # fmt: skip
    settings = load_server_settings(s1)
    assert (settings.host, settings.announced_host) == ("0.0.0.0", "10.0.0.11")
    odb = ODB(url)
    try:
        assert [(r.host, r.port) for r in odb_api.list_servers(odb, "hosts")] == [("10.0.0.11", 31200)]
    finally:
        odb.dispose()
    zato("create", "load-balancer", str(tmp_path / "lb"), "--cluster", "hosts", "--host", "0.0.0.0")
    assert load_lb_settings(str(tmp_path / "lb")).host == "0.0.0.0"


def test_create_dashboard_from_a_server_with_its_admin_credentials(qs_dir, tmp_path, zato):
    out = zato(
        "create",
        "dashboard",
        str(tmp_path / "dash"),
        "--server",
        str(qs_dir / "server1"),
        "--lb",
        str(qs_dir / "load-balancer"),
        "--port",
        "18183",
    )
    assert "http://127.0.0.1:18183/" in out.stdout
    conf = (tmp_path / "dash/config/dashboard.conf").read_text()
    assert stat.S_IMODE(os.stat(tmp_path / "dash/config/dashboard.conf").st_mode) == 0o600
    password = [
        x
        for x in (qs_dir / "server1/config/server.conf").read_text().splitlines()
        if x.startswith("admin_password")
    ]
    assert password and password[0] in conf  # the cluster's admin credentials are the login
    info = json.loads(zato("info", "--json", str(tmp_path / "dash")).stdout)
    assert (info["kind"], info["port"], info["state"]) == ("dashboard", 18183, "stopped")
    assert (qs_dir / "dashboard/config/dashboard.conf").is_file()  # quickstart made one too
    bad = zato(
        "create",
        "dashboard",
        str(tmp_path / "d2"),
        "--server",
        str(qs_dir / "server1"),
        "--lb",
        str(qs_dir / "server2"),
        check=False,
    )
    one_line_error(bad, "--lb", "a server directory; give a load-balancer directory")


def test_conn_help_says_what_each_kind_is(zato):
    from zato.cli.conn import KIND_HELP
    from zato.odb.connectors import KINDS

    out = zato("conn", "create", "--help").stdout
    assert "create an AMQP broker definition" in out and "create an outgoing SQL connection" in out
    assert set(KIND_HELP) == set(KINDS)  # every kind described, none made up


def test_conn_create_help_gives_the_defaults(zato):
    out = " ".join(zato("conn", "create", "amqp-channel", "--help").stdout.split())
    assert (
        "--prefetch PREFETCH messages the broker delivers ahead of acknowledgements; default: 10" in out
        and "--max-in-flight MAX-IN-FLIGHT invocations of the service running at once; default: the prefetch"
        in out
    )
    assert "(parked after max_deliveries); default: 30" in out  # README: --timeout, default 30
    out = " ".join(zato("conn", "create", "amqp-def", "--help").stdout.split())
    assert "--port PORT the broker's port; default: 5672" in out and "- reads it from stdin" in out


def test_every_conn_and_channel_option_says_what_it_is(zato):
    """No bare `--queue QUEUE` in any --help: each option and argument has a line of help."""
    from zato.cli.conn import FIELD_HELP
    from zato.odb.connectors import FIELDS

    for kind, fields in FIELDS.items():
        for f in fields:
            assert (kind, f.name) in FIELD_HELP or (None, f.name) in FIELD_HELP, (kind, f.name)
    for argv in (
        ("conn", "edit", "ibm-mq-def"),
        ("channel", "create"),
        ("channel", "delete"),
        ("conn", "list"),
    ):
        out = zato(*argv, "--help").stdout
        lines = out.split("options:")[1].splitlines()[2:] + [""]  # after -h, --help
        for line, after in zip(lines, lines[1:], strict=False):
            if re.fullmatch(r"  --[a-z-]+( [A-Z_|a-z-]+)?", line):  # its help, if any, is on the next line
                assert after.startswith(" " * 10), (argv, line)
        assert "edit" not in argv or "Options not given keep their values." in " ".join(out.split())


def test_output_into_a_closed_pipe_ends_quietly(qs_dir):
    """`zato info DIR | head -1`: the reader may be gone before zato writes; no traceback."""
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "zato", "info", str(qs_dir)], stdout=w, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(w)
    assert (proc.returncode, proc.stderr) == (141, "")  # 128 + SIGPIPE, as a C tool's


def test_create_help_gives_ports_and_workers_defaults(zato):
    out = " ".join(zato("create", "server", "--help").stdout.split())
    assert (
        "--port PORT port (default 17010)" in out and "--workers WORKERS gunicorn workers (default 2)" in out
    )
    out = " ".join(zato("create", "load-balancer", "--help").stdout.split())
    assert "--port PORT port (default 11223)" in out


def test_deploy_names_a_module_for_a_file_whose_name_cannot_be_one(qs_dir, zato, tmp_path):
    """`zato deploy DIR my-api.py`: told to give --name, with a name that would do (before: "module
    name 'my-api' must be a Python identifier", and nothing about --name). Nothing is contacted."""
    module = tmp_path / "my-api.py"
    module.write_text("from zato.service import Service\n")
    one_line_error(
        zato("deploy", str(qs_dir), str(module), check=False), "give it one with --name, e.g. --name my_api"
    )


def test_the_redis_acl_hint_keeps_the_database_the_user_gave(tmp_path, zato):
    out = zato("quickstart", "create", str(tmp_path / "qs"), "--redis", "redis://127.0.0.1:6379/11").stdout
    hint = [line.strip() for line in out.splitlines() if "[kvdb] url" in line]
    url = "redis://zato-quickstart:PASSWORD@HOST:PORT/11"
    assert hint == [f"then [kvdb] url = {url} in every server.conf, lb.conf and dashboard.conf"]


def test_the_list_of_commands_says_what_each_takes_and_does(zato):
    """It said start and stop took 'a server, load balancer or quickstart cluster' (a dashboard
    too), 'cluster: cluster-wide views' (forget and run-parked change things), undeploy removed
    a service module (a user-config file too) and conn replayed 'parked AMQP messages' (an
    outgoing IBM MQ connection's too)."""
    out = " ".join(zato("--help").stdout.split())
    assert "start start a server, load balancer, dashboard or quickstart cluster" in out
    assert "stop stop a server, load balancer, dashboard or quickstart cluster" in out
    assert "cluster the cluster's status; forget a server; run parked invoke_async calls again" in out
    assert "undeploy remove a deployed service module, or a user-config file, from the whole cluster" in out
    assert "put parked messages back" in out and "AMQP messages" not in out
    conn = " ".join(zato("conn", "--help").stdout.split())
    assert "or an outgoing connection's behind those waiting to go out" in conn
    stop = " ".join(zato("stop", "--help").stdout.split())
    assert "DIR a server, load-balancer, dashboard or quickstart directory" in stop


def test_status_help_names_the_waiting_column_and_the_parked_lines(zato):
    """`zato cluster status --help` said nothing of its WAITING column or of the lines under
    the table for messages parked now."""
    status = " ".join(zato("cluster", "status", "--help").stdout.split())
    assert "WAITING, an outgoing connection's messages yet to go out" in status, status
    assert "a line for each connector with messages parked now" in status, status
    assert "zato conn replay-parked" in status, status
    assert "reconnecting for the holder's [lease] handover_after (10 s by default)" in status, status


def test_stop_help_says_what_it_does(zato):
    """`zato stop --help` had no description line, only its usage and options."""
    stop = " ".join(zato("stop", "--help").stdout.split())
    assert "Send SIGTERM to the component of DIR (by its pidfile) and wait for it to exit" in stop, stop
    assert "killed (SIGKILL)" in stop and "drain_seconds" in stop, stop


def test_start_and_info_help_say_what_they_do(zato):
    """`zato start --help` and `zato info --help` had no description, only usage and options:
    not what 'ready' means for start, nor where the whole cluster's view is for info."""
    start = " ".join(zato("start", "--help").stdout.split())
    assert "a server answers /zato/ready (its services loaded)" in start, start
    assert "A start that fails stops what it started and says why (exit 1)" in start, start
    info = " ".join(zato("info", "--help").stdout.split())
    assert (
        "whether it runs" in info
        and "For the whole cluster as Redis sees it: zato cluster status DIR" in info
    )


def test_a_server_joining_another_takes_its_metrics_credentials(tmp_path, zato):
    url = f"sqlite:///{tmp_path}/odb.db"
    zato("create", "cluster", url, "scrape")
    s1 = str(tmp_path / "s1")
    zato("create", "server", s1, "--odb", url, "--cluster", "scrape", "--port", "31110")
    with open(f"{s1}/config/server.conf", "a") as f:
        f.write("\n[metrics]\nusername = prom\npassword = scrape-pw-123\n")
    zato("create", "server", str(tmp_path / "s2"), "--join", s1, "--port", "31111")
    zato("create", "dashboard", str(tmp_path / "d"), "--server", str(tmp_path / "s2"), "--port", "31119")
    for conf in ("s2/config/server.conf", "d/config/dashboard.conf"):
        text = (tmp_path / conf).read_text()
        assert "[metrics]\nusername = prom\npassword = scrape-pw-123\n" in text, conf


def _leaf_commands(zato, argv: tuple[str, ...] = ()):  # noqa: ANN202 - a generator of (argv, --help)
    """Every command that runs something (`conn create amqp-def`, `start`), with its --help; found
    by reading each group's --help, so a command added later is covered."""
    out = zato(*argv, "--help").stdout
    positional = out.partition("positional arguments:\n")[2].partition("\n\n")[0]
    if positional.splitlines()[0].strip() in ("COMMAND", "ACTION", "WHAT", "KIND", "SUBCOMMAND"):
        for name in re.findall(r"^    (\S+)", positional, re.M):
            yield from _leaf_commands(zato, (*argv, name))
    else:
        yield argv, out


def test_every_command_help_says_what_it_does_and_its_examples_parse(zato):
    """`zato quickstart create --help`, `create odb|cluster|server|load-balancer`, `channel
    create|list|delete` and `conn list` had no description: only their usage and options, not
    what they make, what must exist first or what comes next. Each example given must be one
    the command takes."""
    import shlex

    from zato.cli.main import build_parser

    leaves = list(_leaf_commands(zato))
    assert len(leaves) > 40 and ("quickstart", "create") in dict(leaves), leaves
    for argv, out in leaves:
        description = out.partition("\n\n")[2].partition("positional arguments:")[0].strip()
        assert len(description) > 30, (argv, out)
        examples = out.partition("\nexamples:\n")[2]
        for line in examples.strip().splitlines() if examples else ():
            words = shlex.split(line.split(" | ")[-1])
            assert words[: 1 + len(argv)] == ["zato", *argv], (argv, line)
            build_parser(argv[0]).parse_args(words[1:])  # a usage error would exit 2
    said = " ".join(zato("quickstart", "create", "--help").stdout.split())
    assert "Nothing is started: zato start DIR." in said and "zato quickstart create ~/qs" in said
