"""What a component's log file holds (zato.common.log.setup_logging): pika's connection chatter
only at DEBUG. Before, every close of a connector's AMQP connection wrote a dozen pika INFO
lines (transport states, socket reprs) beside its own one; a connector stopped while RabbitMQ
blocked it left 29 pika lines of 35."""

from __future__ import annotations

import logging

import pytest

from zato.common.log import setup_logging


@pytest.fixture
def restore_logging():
    root, pika = logging.getLogger(), logging.getLogger("pika")
    handlers, level, pika_level = list(root.handlers), root.level, pika.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    pika.setLevel(pika_level)


@pytest.mark.parametrize(("level", "chatter_kept"), [("INFO", False), ("WARNING", False), ("DEBUG", True)])
def test_pika_says_only_warnings_unless_the_level_is_debug(tmp_path, restore_logging, level, chatter_kept):
    path = tmp_path / "server.log"
    setup_logging(str(path), level=level)
    logging.getLogger("pika.connection").info("Closing connection (200): 'Normal shutdown'")
    logging.getLogger("pika.connection").warning("Received Connection.Blocked from broker")
    logging.getLogger("zato.connector.amqp").warning("amqp-outgoing 'orders': connection lost")
    for h in logging.getLogger().handlers:
        h.flush()
    text = path.read_text()
    assert ("Normal shutdown" in text) is chatter_kept
    assert "Connection.Blocked" in text and "connection lost" in text
