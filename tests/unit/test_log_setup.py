"""What a component's log file holds (zato.common.log.setup_logging): pika's connection chatter
only at DEBUG. Before, every close of a connector's AMQP connection wrote a dozen pika INFO
lines (transport states, socket reprs) beside its own one; a connector stopped while RabbitMQ
blocked it left 29 pika lines of 35. And a log file whose folder went (deleted, renamed) or
whose disk is full never raises into the thread that logs."""

from __future__ import annotations

import errno
import logging
import os
import shutil

import pytest

from zato.common.log import setup_logging
from zato.common.logfile import LogFileHandler


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


def test_a_log_whose_folder_is_deleted_never_raises_and_resumes_once_it_is_back(
    tmp_path, restore_logging, capsys
):
    """Before, the first line after logs/ was deleted raised FileNotFoundError in the thread that
    logged (a server's drain thread ended, and the server never stopped)."""
    logs = tmp_path / "logs"
    setup_logging(str(logs / "server.log"))
    log = logging.getLogger("zato.test")
    log.info("before")
    shutil.rmtree(logs)
    for i in range(3):
        log.info("while gone %d", i)  # no exception
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 and f"cannot open log file {logs / 'server.log'} again (No such file" in said[0], (
        said
    )
    logs.mkdir()
    log.info("back")
    assert "back" in (logs / "server.log").read_text()


def test_a_log_whose_folder_is_renamed_writes_on_to_the_moved_file(tmp_path, restore_logging, capsys):
    setup_logging(str(tmp_path / "server1" / "logs" / "server.log"))
    os.rename(tmp_path / "server1", tmp_path / "moved")
    logging.getLogger("zato.test").info("graceful stop")
    for h in logging.getLogger().handlers:
        h.flush()
    assert "graceful stop" in (tmp_path / "moved" / "logs" / "server.log").read_text()
    assert not (tmp_path / "server1").exists()  # not made anew
    assert "writing on to the file it had open" in capsys.readouterr().err


def test_a_record_that_cannot_be_written_is_said_once_and_dropped(
    tmp_path, restore_logging, capsys, monkeypatch
):
    setup_logging(str(tmp_path / "server.log"))
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, LogFileHandler))

    def full(_text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(handler.stream, "write", full)
    for _ in range(3):
        logging.getLogger("zato.test").info("lost")
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 and "(No space left on device): its records are dropped" in said[0], said
