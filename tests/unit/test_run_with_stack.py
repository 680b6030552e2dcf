"""zato.connector.base.run_with_stack: the AMQP channel consumes in a thread with a stack of
its own (amqp_common.DECODE_STACK); tests/integration/test_amqp_channel.py runs it with a 2 MB
`ulimit -s`."""

from __future__ import annotations

import threading

import pytest

from zato.connector import base


def test_run_with_stack_gives_the_thread_its_stack_and_hands_back_result_and_error():
    seen: list[str] = []

    def deep() -> int:
        seen.append(threading.current_thread().name)
        return 7

    assert base.run_with_stack(deep, 64 * 1024 * 1024, "consume") == 7 and seen == ["consume"]
    assert threading.stack_size() == 0  # the size for other threads is as it was

    def fails() -> int:
        raise KeyError("from the thread")

    with pytest.raises(KeyError, match="from the thread"):
        base.run_with_stack(fails, 1024 * 1024, "consume")
