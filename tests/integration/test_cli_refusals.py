"""What the CLI must refuse at once, with one line saying what to do, rather than take and
fail later (a connector retrying for ever, a module named by its file, a stop that kills)."""

from __future__ import annotations

import os

import pytest

from tests.support import Quickstart, cleanup_redis, free_port, one_line_error, zato


@pytest.fixture(scope="module")
def qs(tmp_path_factory):
    """A quickstart of one server, made and not started (the CLI reads its ODB and Redis)."""
    cluster = Quickstart(tmp_path_factory.mktemp("refusals"), servers=1, lb=False).create()
    yield cluster
    cleanup_redis(cluster.cluster)


def test_a_connection_host_that_is_no_host_is_refused(qs):
    """Before: `zato conn create amqp-def DIR --host 'a b'` (and edit) answered 'created amqp-def
    ...: host=a b', and its connectors failed to resolve it at every retry, for ever; the same
    for an IBM MQ conn_name, a ZeroMQ address, an HTTP or SQL outgoing's host."""
    path = qs.server_dir("server1")
    refused = [
        (("amqp-def", "--name", "rabbit", "--host", "a b"), "amqp-def host: 'a b' is neither an IP"),
        (
            ("ibm-mq-def", "--name", "mq", "--conn-name", "a b(1414)"),
            "ibm-mq-def conn_name: 'a b' is neither",
        ),
        (  # the IBM MQ driver cut a channel name to 20 bytes unsaid, and raised on a non-ASCII
            # queue manager name in the connector at every start
            ("ibm-mq-def", "--name", "mq", "--channel", "DEV.APP.SVRCONN.CLIENT1"),
            "ibm-mq-def channel: 'DEV.APP.SVRCONN.CLIENT1' is not an IBM MQ channel name (1 to 20 of",
        ),
        (
            ("ibm-mq-def", "--name", "mq", "--queue-manager", "KOLEJKA.ŁÓDŹ"),
            "ibm-mq-def queue_manager: 'KOLEJKA.ŁÓDŹ' is not an IBM MQ queue manager name",
        ),
        (
            ("zmq-channel", "--name", "zc", "--address", "tcp://a b:5555", "--service", "x"),
            "'a b' is neither",
        ),
        (
            ("zmq-outgoing", "--name", "zo", "--address", "tcp://a b:5555"),
            "zmq-outgoing address: 'tcp://a b:5555'",
        ),
        (("http-outgoing", "--name", "crm", "--address", "http://a b:8080"), "http-outgoing address: 'a b'"),
        (("sql-outgoing", "--name", "db", "--url", "postgresql://u@a b/crm"), "sql-outgoing url: 'a b'"),
    ]
    for argv, said in refused:
        kind, *rest = argv
        line = one_line_error(zato("conn", "create", kind, path, *rest, check=False), said)
        assert "give" in line, line  # and what to give instead
    assert zato("conn", "list", path).stdout.strip() == "no connection definitions"
    made = zato("conn", "create", "amqp-def", path, "--name", "rabbit", "--host", "rabbit.example.com")
    assert "host=rabbit.example.com" in made.stdout
    one_line_error(
        zato("conn", "edit", "amqp-def", path, "--name", "rabbit", "--host", "c d", check=False),
        "amqp-def host: 'c d' is neither an IP address nor a host name",
    )
    assert "host=rabbit.example.com" in zato("conn", "list", path, "--kind", "amqp-def").stdout
    zato("conn", "delete", "amqp-def", path, "--name", "rabbit")


def test_deploy_refuses_an_empty_name(qs, tmp_path):
    """Before: `zato deploy DIR FILE --name ''` deployed the module under the file's name, unsaid
    (an empty --name was taken as none); a user-config file likewise."""
    module = tmp_path / "hello_api.py"
    module.write_text("VALUE = 1\n")
    conf = tmp_path / "airports.ini"
    conf.write_text("[main]\nx = 1\n")
    path = qs.server_dir("server1")
    for name in ("", " "):
        one_line_error(
            zato("deploy", path, str(module), "--name", name, check=False),
            "--name is empty: give the module a name, or leave --name out",
        )
    one_line_error(
        zato("deploy", path, str(conf), "--name", "", check=False), "give the user-config file a name"
    )
    # nothing was deployed: undeploy finds neither
    assert zato("undeploy", path, "hello_api", check=False).returncode == 1
    assert zato("undeploy", path, "airports.ini", check=False).returncode == 1


def test_deploy_with_the_directory_forgotten_says_it_comes_first(qs, tmp_path):
    """Before: `zato deploy hello_api.py` said 'the following arguments are required: FILE',
    as if the file were what was missing."""
    module = tmp_path / "hello_api.py"
    module.write_text("VALUE = 1\n")
    for given in (str(module), "hello_api.py"):  # there, or not in the folder it is run in
        proc = zato("deploy", given, check=False, cwd=str(tmp_path))
        assert proc.returncode == 2, proc.stdout + proc.stderr  # a usage error, as any missing argument
        last = proc.stderr.strip().splitlines()[-1]
        assert last == (
            f"zato deploy: error: {given} is not a directory: the first argument must be the server's"
            f" (or quickstart's) directory, then the file: zato deploy DIR {given}"
        ), proc.stderr
        assert (
            "usage: zato deploy [-h] [--name NAME] [--timeout SECONDS] [--wait SECONDS] DIR FILE"
            in proc.stderr
        )
    proc = zato("deploy", qs.server_dir("server1"), check=False)
    assert proc.returncode == 2 and "error: FILE is required after" in proc.stderr, proc.stderr


def test_every_empty_list_says_it_is_empty(qs):
    """Before: an empty `zato channel list` printed nothing (a script or a user could not tell it
    from a command that did not run), while `zato conn list` said 'no connection definitions'."""
    path = qs.server_dir("server1")
    assert zato("channel", "list", path).stdout == "no HTTP channels\n"
    assert zato("conn", "list", path).stdout == "no connection definitions\n"
    assert zato("conn", "list", path, "--kind", "amqp-channel").stdout == "no amqp-channel definitions\n"
    zato("channel", "create", path, "--name", "listed", "--url-path", "/listed", "--service", "x.y")
    listed = zato("channel", "list", path).stdout
    assert listed.startswith("listed: any /listed -> x.y") and "no HTTP channels" not in listed, listed
    zato("channel", "delete", path, "--name", "listed")


@pytest.mark.parametrize(
    ("section", "key", "said"),
    [
        ("main", "drain_seconds", "must be 0 or more and at most 600 (seconds)"),
        ("main", "deploy_timeout", "must be more than 0 and at most 3600 (seconds)"),
        ("limits", "body_timeout", "must be more than 0 and at most 3600 (seconds)"),
        ("limits", "send_timeout", "must be more than 0 and at most 3600 (seconds)"),
        ("lease", "retry_interval", "must be more than 0 and at most 3600 (seconds)"),
        ("kvdb", "socket_timeout", "must be more than 0 and at most 300 (seconds)"),
    ],
)
def test_an_absurd_duration_in_server_conf_is_refused_at_start(qs, section, key, said):
    """Before: drain_seconds = 1e12 was taken: the server started, and `zato stop` waited its
    whole --timeout for the drain and then killed it (a body, a deploy, a lease's retry, a Redis
    call likewise waited for ever, in effect)."""
    conf = os.path.join(qs.server_dir("server1"), "config", "server.conf")
    line = refused_at_start(qs, section, {key: "1e12"})
    assert line == f"zato: error: {conf}: [{section}] {key}: 1e12 {said}", line


def test_a_max_body_over_2_gib_is_refused_at_start(qs):
    """Before: [limits] max_body was taken up to 1 TiB, though a body is read whole into a
    worker's memory (and a channel's own limit cannot be over 2 GiB)."""
    conf = os.path.join(qs.server_dir("server1"), "config", "server.conf")
    line = refused_at_start(qs, "limits", {"max_body": str(2**40)})
    said = "1099511627776 is over 2147483647 bytes (2 GiB), the most it can be"
    said += " (a body is read whole into a worker's memory)"
    assert line == f"zato: error: {conf}: [limits] max_body: {said}", line


def test_gunicorn_keepalive_0_is_refused_at_start(qs):
    """Before: taken, and gunicorn then read a request's head with no time limit (it times the
    head with keepalive, and with 0 not at all): 40 clients sending a header a byte at a time
    held every connection of a worker of worker_connections = 20, and /zato/ping timed out for
    as long as they stayed (3 minutes, until they stopped)."""
    conf = os.path.join(qs.server_dir("server1"), "config", "server.conf")
    line = refused_at_start(qs, "gunicorn", {"keepalive": "0"})
    said = "0 would give a request's head no time limit (gunicorn times the head with keepalive, and"
    said += " with 0 not at all): slow clients of the server's own port would hold its connections for"
    said += " ever; 1 or more (seconds)"
    assert line == f"zato: error: {conf}: [gunicorn] keepalive: {said}", line


def refused_at_start(qs, section: str, values: dict) -> str:
    """The one line `zato start` says with `values` in server.conf's [section] (then put back),
    having started nothing."""
    conf = os.path.join(qs.server_dir("server1"), "config", "server.conf")
    with open(conf, encoding="utf-8") as f:
        before = f.read()
    try:
        Quickstart._merge(conf, section, values)
        line = one_line_error(zato("start", qs.server_dir("server1"), check=False))
        assert qs.pid("server1") is None, line  # nothing started
        return line
    finally:
        if qs.pid("server1") is not None:  # it started after all (before the fix): stopped again
            zato("stop", qs.server_dir("server1"), "--timeout", "5", check=False)
        with open(conf, "w", encoding="utf-8") as f:
            f.write(before)


def test_an_odb_that_does_not_answer_is_named(tmp_path):
    """Before: with the cluster's PostgreSQL down, `zato conn list` (deploy, channel, undeploy,
    cluster forget...) said only 'ODB error: (psycopg.OperationalError) connection failed: ...',
    naming no ODB nor where it is set, and `zato cluster status` said that warning twice. Now
    the line names the ODB (password masked) and [odb] url, and the status says it once."""
    qs = Quickstart(tmp_path, servers=1, lb=False).create()
    try:
        port = free_port()  # nothing listens there
        url = f"postgresql://zato:secret-pw@127.0.0.1:{port}/zato"
        Quickstart._merge(f"{qs.server_dir('server1')}/config/server.conf", "odb", {"url": url})
        named = f"(the ODB at postgresql+psycopg://zato:******@127.0.0.1:{port}/zato: [odb] url in the"
        for command in (
            ("conn", "list", qs.path),
            ("channel", "list", qs.path),
            ("cluster", "forget", qs.path, "x"),
        ):
            line = one_line_error(zato(*command, check=False), "ODB error: ", named)
            assert "secret-pw" not in line, line
        status = zato("cluster", "status", qs.path, check=False)
        warnings = [line for line in status.stdout.splitlines() if line.startswith("warning: ODB: ")]
        assert len(warnings) == 1 and named in warnings[0], status.stdout
    finally:
        cleanup_redis(qs.cluster)


def test_a_secret_read_from_an_empty_stdin_is_refused(qs):
    """Before: `zato conn create amqp-def DIR --name rabbit --password -` with nothing on stdin
    (a pipe whose writer failed, `< /dev/null`) said 'created amqp-def ...' (exit 0) with an
    empty password, and its connectors' logins were refused later. Now it is one line, exit 1,
    and nothing is saved; an empty line still gives an empty value on purpose."""
    path = qs.server_dir("server1")
    for action in ("create", "edit"):
        if action == "edit":
            zato("conn", "create", "amqp-def", path, "--name", "empty-in", "--password", "guest")
        proc = zato(
            "conn", action, "amqp-def", path, "--name", "empty-in", "--password", "-", input="", check=False
        )
        one_line_error(proc, "no password given for amqp-def empty-in: stdin ended before a line was read")
        listed = zato("conn", "list", path, "--kind", "amqp-def").stdout
        assert ("empty-in:" in listed) == (action == "edit"), listed
    zato("conn", "delete", "amqp-def", path, "--name", "empty-in")


def test_deploy_refuses_a_file_that_is_neither_a_module_nor_user_config(qs, tmp_path):
    """Before: any other file was taken as a Python module named after it: settings.json holding
    {"a": 1} (which Python reads) was deployed as module 'settings' with no services, exit 0."""
    path = qs.server_dir("server1")
    for name, text in (("settings.json", '{"a": 1}\n'), ("notes.txt", "# notes\n"), ("hello_api", "X = 1\n")):
        given = tmp_path / name
        given.write_text(text)
        one_line_error(
            zato("deploy", path, str(given), check=False),
            f"{given}: deploy takes a service module (MODULE.py) or a user-config file (NAME.ini, NAME.conf)",
        )
        assert zato("undeploy", path, name.partition(".")[0], check=False).returncode == 1  # none deployed


def test_an_argument_a_command_does_not_take_is_said_with_that_commands_usage(qs):
    """Before: `zato stop DIR1 DIR2` (or any extra argument) printed `usage: zato [-h] [--version]
    COMMAND ...` and `zato: error: unrecognized arguments: DIR2`: not which command refused it,
    nor what that one takes."""
    path = qs.server_dir("server1")
    for argv, usage, extra in (
        (("stop", path, path + "2"), "usage: zato stop [-h] [--timeout TIMEOUT] DIR", path + "2"),
        (("cluster", "status", path, "--jsn"), "usage: zato cluster status [-h] [--json] DIR", "--jsn"),
        (("conn", "list", path, "--name", "x"), "usage: zato conn list [-h] [--kind KIND] DIR", "--name x"),
    ):
        proc = zato(*argv, check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[0] == usage, proc.stderr
        command = usage.removeprefix("usage: ").partition(" [")[0]
        assert lines[-1] == f"{command}: error: unrecognized arguments: {extra}", proc.stderr


@pytest.mark.parametrize("password", ["Se@cretXYZ", "p@ss:w/rdXYZ"])
def test_an_odb_url_whose_password_is_not_percent_encoded_is_refused_showing_none_of_it(password):
    """A password holding '@', ':' or '/' as it is, not percent-encoded, in an ODB URL. Before,
    `zato create cluster` (as a server's start with it in server.conf) tried PostgreSQL at the
    host made of the password's tail, and said it: `failed to resolve host 'cretXYZ@127.0.0.1'`;
    or, with ':' and '/', a traceback (ValueError: invalid literal for int() with base 10)."""
    url = f"postgresql://zato:{password}@127.0.0.1:5432/zato"
    line = one_line_error(
        zato("create", "cluster", "-", "c", input=url + "\n", check=False),
        "ODB URL 'postgresql+psycopg://******@127.0.0.1:5432/zato' cannot be read:",
        "must be percent-encoded in the URL (@ as %40, : %3A, / %2F",
    )
    assert "XYZ" not in line, line


def test_an_sql_outgoing_url_whose_port_is_not_a_number_is_refused(qs):
    """Before: a ValueError traceback from `zato conn create sql-outgoing` (a 500 from the admin API)."""
    line = one_line_error(
        zato(
            "conn",
            "create",
            "sql-outgoing",
            qs.path,
            "--name",
            "crm",
            "--url",
            "postgresql://crm@db:54x2/crm",
            check=False,
        ),
        "sql-outgoing url: 'postgresql://crm@db:54x2/crm': its port is not a number; give",
    )
    assert "Traceback" not in line
