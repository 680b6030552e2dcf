"""A small client for HAProxy's Runtime API (the admin-level stats socket).

Every failure comes out as LBError naming the command that failed.
"""

from __future__ import annotations

import csv
import io
import os
import re
import socket
from dataclasses import dataclass

from zato.common.errors import LBError

_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f;]")
MAX_UNIX_PATH = 100  # sun_path is 108 bytes; HAProxy also binds NAME.PID.tmp first


@dataclass(frozen=True)
class ServerState:
    """One backend server as HAProxy sees it (a row of `show stat`)."""

    name: str
    address: str  # ip:port
    status: str  # UP, DOWN, DRAIN, MAINT, "no check", "UP 1/2", ...
    sessions: int  # current sessions (requests in flight or keep-alive streams)
    check: str  # last check status, e.g. L7OK, L4CON
    admin_state: str = "ready"  # ready, drain or maint: what was set, whatever the checks say

    @property
    def up(self) -> bool:
        return self.status.startswith(("UP", "DRAIN", "no check"))


def _connect(sock: socket.socket, path: str) -> None:
    """Connect to a unix socket, also when its path is longer than sun_path allows (108
    bytes): then through /proc/self/fd/N/NAME, N being the socket's folder opened O_PATH."""
    if len(path.encode()) < MAX_UNIX_PATH:
        sock.connect(path)
        return
    fd = os.open(os.path.dirname(path), os.O_PATH)
    try:
        sock.connect(f"/proc/self/fd/{fd}/{os.path.basename(path)}")
    finally:
        os.close(fd)


class RuntimeAPI:
    def __init__(self, path: str, timeout: float = 2.0):
        self.path = path
        self.timeout = timeout

    def command(self, cmd: str) -> str:
        """Send one command and return HAProxy's full answer. A command holding a line break,
        a control character or `;` (which would start a second command) is refused."""
        if _UNSAFE_RE.search(cmd):
            raise LBError(f"refusing an unsafe HAProxy Runtime API command: {cmd[:80]!r}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                _connect(sock, self.path)
                sock.sendall(cmd.encode() + b"\n")
                chunks = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except OSError as e:
            raise LBError(f"HAProxy Runtime API at {self.path}: {cmd.split()[0]}...: {e}") from e
        return b"".join(chunks).decode("utf-8", "replace")

    def ping(self) -> bool:
        try:
            return "Version:" in self.command("show info")
        except LBError:
            return False

    def info(self) -> dict[str, str]:
        result = {}
        for line in self.command("show info").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                result[key.strip()] = value.strip()
        return result

    def servers(self, backend: str) -> dict[str, ServerState]:
        admin = self._admin_states(backend)
        text = self.command("show stat").lstrip("# ")
        result = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND", None):
                continue
            result[row["svname"]] = ServerState(
                name=row["svname"],
                address=row.get("addr", ""),
                status=row.get("status", ""),
                sessions=int(row.get("scur") or 0),
                check=row.get("check_status", ""),
                admin_state=admin.get(row["svname"], "ready"),
            )
        return result

    def _admin_states(self, backend: str) -> dict[str, str]:
        """srv_admin_state of `show servers state`: bit 0x01 forced maintenance, 0x08 drain."""
        result = {}
        for line in self.command(f"show servers state {backend}").splitlines():
            parts = line.split()
            if len(parts) > 6 and parts[1] == backend and parts[6].isdigit():
                bits = int(parts[6])
                result[parts[3]] = "maint" if bits & 0x01 else "drain" if bits & 0x08 else "ready"
        return result

    def _expect(self, cmd: str, ok: str = "") -> None:
        answer = self.command(cmd).strip()
        if ok and ok not in answer or not ok and answer:
            raise LBError(f"HAProxy refused `{cmd}`: {answer.splitlines()[0] if answer else 'no answer'}")

    def add_server(self, backend: str, name: str, ip: str, port: int, options: str) -> None:
        """Add a server and put it in service (dynamic servers start in maintenance)."""
        self._expect(f"add server {backend}/{name} {ip}:{port} {options}", "New server registered")
        if "check" in options.split():
            self.enable_health(backend, name)
        self.set_state(backend, name, "ready")

    def enable_health(self, backend: str, name: str) -> None:
        self._expect(f"enable health {backend}/{name}")

    def set_state(self, backend: str, name: str, state: str) -> None:
        if state not in ("ready", "drain", "maint"):
            raise ValueError(state)
        self._expect(f"set server {backend}/{name} state {state}")

    def set_addr(self, backend: str, name: str, ip: str, port: int) -> None:
        self._expect(f"set server {backend}/{name} addr {ip} port {port}", "change")

    def del_server(self, backend: str, name: str) -> None:
        self._expect(f"del server {backend}/{name}", "Server deleted")
