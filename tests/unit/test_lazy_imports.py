"""Heavy libraries stay out of the processes that do not use them (each costs every process of
a server's tree its resident pages): checked in a fresh interpreter per case."""

from __future__ import annotations

import subprocess
import sys

import pytest

LOADED = "import sys; print(' '.join(m for m in {heavy!r} if m in sys.modules))"

WORKER = "import zato.server.worker, zato.server.wsgi, zato.service.outgoing"
ZYGOTE = (
    "import importlib, zato.connector.zygote as z\n"
    "for m in z.PRELOAD: importlib.import_module(m)\n"
    "z._preload_odb({url!r})"
)


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


@pytest.mark.parametrize(
    ("url", "driver", "other"),
    [
        ("sqlite:////tmp/odb.sqlite", "sqlite3", "psycopg"),
        ("postgresql://u@127.0.0.1/db", "psycopg", "sqlite3.dbapi2"),
    ],
)
def test_the_zygote_preloads_its_odbs_driver_and_not_what_few_connectors_use(url, driver, other) -> None:  # noqa: ANN001
    got = loaded(ZYGOTE.format(url=url), ("pika", driver, other, "zmq", "ibmmq", "requests"))
    assert got == [f"pika {driver}"]
