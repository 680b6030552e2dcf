"""Shared fixtures. `quickstart` is a factory of created (not started) Quickstart clusters,
each closed (every process stopped by pid, Redis keys removed) at teardown."""

from __future__ import annotations

import pytest

from tests.support import Quickstart


@pytest.fixture
def quickstart(tmp_path):
    made: list[Quickstart] = []

    def make(**kwargs) -> Quickstart:
        qs = Quickstart(tmp_path, **kwargs).create()
        made.append(qs)
        return qs

    yield make
    for qs in made:
        qs.close()


@pytest.fixture(scope="module")
def module_quickstart(tmp_path_factory):
    """Like `quickstart`, but the clusters live for the whole test module."""
    made: list[Quickstart] = []

    def make(**kwargs) -> Quickstart:
        qs = Quickstart(tmp_path_factory.mktemp("qs"), **kwargs).create()
        made.append(qs)
        return qs

    yield make
    for qs in made:
        qs.close()
