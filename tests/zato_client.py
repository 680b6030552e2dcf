"""Zato's own Python client (zato-client 3.2.1, from PyPI) for tests, unchanged.

It cannot be pip-installed here: it needs zato-common 3.2.1, whose dependencies do not install
on Python 3.11+, and it ships a `zato` namespace package. bin/setup-deps keeps its wheel in
.venv/zato-client/; `load()` runs the wheel's zato/client/__init__.py as it is, with stand-ins
only for the names it imports from zato-common, bunch, lxml and six (none of them is used on
the JSON paths of AnyServiceInvoker and APIClient).
"""

from __future__ import annotations

import glob
import os
import sys
import types
import zipfile
from unittest import mock

import pytest

WHEELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "zato-client")


def _module(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _stand_ins() -> dict[str, types.ModuleType]:
    xml_names = (
        "soap_data_path",
        "soap_data_xpath",
        "soap_fault_xpath",
        "zato_data_path",
        "zato_data_xpath",
        "zato_details_xpath",
        "zato_result_xpath",
    )
    return {
        "bunch": _module("bunch", bunchify=lambda value: value),
        "lxml": _module("lxml", objectify=None),
        "lxml.objectify": _module("lxml.objectify"),
        "six": _module("six", PY3=True),
        "zato.common.api": _module(
            "zato.common.api",
            BROKER=types.SimpleNamespace(DEFAULT_EXPIRATION=15),
            ZATO_NOT_GIVEN=object(),
            ZATO_OK="ZATO_OK",
        ),
        "zato.common.xml_": _module("zato.common.xml_", **dict.fromkeys(xml_names)),
        "zato.common.log_message": _module("zato.common.log_message", CID_LENGTH=28),
        "zato.common.odb": _module("zato.common.odb"),
        "zato.common.odb.model": _module("zato.common.odb.model", Server=object),
    }


def load() -> types.ModuleType:
    """The zato.client module of zato-client 3.2.1; skips the test if the wheel is missing."""
    wheels = sorted(glob.glob(os.path.join(WHEELS, "zato_client-3.2.1-*.whl")))
    if not wheels:
        pytest.skip("no zato-client 3.2.1 wheel in .venv/zato-client (run bin/setup-deps)")
    with zipfile.ZipFile(wheels[-1]) as z:
        source = z.read("zato/client/__init__.py").decode("utf-8")
    module = types.ModuleType("zato_client_321")
    module.__file__ = wheels[-1] + "/zato/client/__init__.py"
    with mock.patch.dict(sys.modules, _stand_ins()):
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module
