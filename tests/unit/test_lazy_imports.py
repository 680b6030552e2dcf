"""Heavy libraries stay out of the processes that do not use them (each costs every process of
a server's tree its resident pages): checked in a fresh interpreter per case."""

from __future__ import annotations

import subprocess
import sys

LOADED = "import sys; print(' '.join(m for m in {heavy!r} if m in sys.modules))"

WORKER = "import zato.server.worker, zato.server.wsgi, zato.service.outgoing"
ZYGOTE = "import importlib, zato.connector.zygote as z\nfor m in z.PRELOAD: importlib.import_module(m)"
# What a forked connector imports on top of the zygote's modules, whatever its kind.
CONNECTOR = "from zato.connector.run import MODULES\nfor m in MODULES.values(): importlib.import_module(m)"
BY_HAND = (  # a connector run without a definition reads it from the ODB (none here)
    "from zato.connector.run import load_definition\ntry:\n"
    "    load_definition('sqlite:////nonexistent/odb.sqlite', 'c', 'zmq-channel', 'x')\n"
    "except Exception:\n    pass"
)
ODB = ("sqlalchemy", "sqlite3", "psycopg", "zato.odb.engine", "zato.odb.connectors")


def loaded(code: str, heavy: tuple[str, ...]) -> list[str]:
    """What `code` printed, then which of `heavy` are imported after it, a line each."""
    out = subprocess.run(
        [sys.executable, "-c", code + "\n" + LOADED.format(heavy=heavy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.splitlines()


def test_a_server_worker_imports_pyzmq_and_requests_only_when_a_service_needs_them() -> None:
    code = (
        f"{WORKER}\n{LOADED.format(heavy=('zmq', 'requests', 'pika'))}\n"
        "from zato.service.out_http import HTTPConn\n"
        "HTTPConn('crm', {'address': 'http://127.0.0.1:1'})"  # a service's first outgoing HTTP call
    )
    assert loaded(code, ("requests",)) == ["", "requests"]


def test_the_zygote_preloads_pika_and_not_what_few_connectors_use_nor_the_odb() -> None:
    assert loaded(ZYGOTE, ("pika", "zmq", "ibmmq", "requests", *ODB)) == ["pika"]


def test_no_connector_kind_imports_sqlalchemy_or_an_odb_driver() -> None:
    # The supervisor hands each connector its definition: only a connector started by hand
    # (or as a plain process) reads the ODB, and imports SQLAlchemy then.
    code = f"{ZYGOTE}\n{CONNECTOR}\n{LOADED.format(heavy=ODB)}\n{BY_HAND}"
    assert loaded(code, ("sqlalchemy", "zmq")) == ["", "sqlalchemy zmq"]


def test_zato_start_and_stop_leave_the_odb_redis_and_the_server_to_the_server() -> None:
    # `zato start` spawns a component at once and the component checks what it shares: the
    # command line imports only the command it runs (`zato stop` returned in 0.2 s, not 1.1 s).
    heavy = ("sqlalchemy", "redis", "gunicorn", "gevent", "zato.odb.api")
    for command in ("start", "stop", "info"):
        parse = f"build_parser({command!r}).parse_args([{command!r}, '/x'])"
        code = f"from zato.cli.main import build_parser\n{parse}"
        assert loaded(code, heavy) == [""], command
    assert loaded("from zato.cli.main import build_parser\nbuild_parser()", ("sqlalchemy",)) == ["sqlalchemy"]


def test_a_server_worker_imports_configobj_only_when_there_is_a_user_config_file(tmp_path) -> None:
    code = (
        f"{WORKER}\nfrom zato.service.user_config import UserConfig\n"
        f"UserConfig([{str(tmp_path)!r}]).current()\n{LOADED.format(heavy=('configobj',))}\n"
        f"open({str(tmp_path / 'crm.ini')!r}, 'w').write('[db]\\nname = crm\\n')\n"
        f"assert UserConfig([{str(tmp_path)!r}]).current().crm.db.name == 'crm'"
    )
    assert loaded(code, ("configobj",)) == ["", "configobj"]
