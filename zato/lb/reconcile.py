"""The LB controller's decisions as pure functions: a desired server (from membership) and
HAProxy's actual state in, the Runtime API commands out. No sockets, no clock: the
controller reads both sides, calls these, and applies the commands in order (stopping at
the first one HAProxy refuses, for that server only).

    member appears                 add server, then state drain if it says "draining"
    member without health checks   enable health (an add cut short after `add server`: a
                                   dynamic server starts with its checks off)
    member moved                   set addr
    member state differs           set state ready / drain
    member's key is gone           state drain; once it has no sessions (or DRAIN_GRACE
                                   after the drain began): state maint, shutdown sessions
                                   if any are left, del server
    no member at all, while some   nothing for EMPTY_GRACE (see keep_when_empty)
      server is ready and UP
    member DOWN for HUNG_AFTER     shutdown sessions (a hung process: its kernel answers TCP,
      with sessions, its checks    so only this ends its requests; render.py's docstring);
      timing out                   not a server that drains (503, then connection refused)
"""

from __future__ import annotations

from dataclasses import dataclass

from zato.lb.render import Backend
from zato.lb.runtime import ServerState

DRAIN_GRACE = 30.0  # a drained server still busy after this long has its sessions shut down
# A server failing its checks this long with requests still on it is hung (SIGSTOP, a
# deadlock): its host's kernel answers the LB's TCP keep-alive probes, so nothing else ends
# those requests before `timeout server`. Longer than a vanished host's requests take to end
# by themselves (keep-alive: ~3 s; a connection being made: `timeout connect`), so those are
# never cut, and than a lossy link makes a live server flap DOWN (one check, ~0.3 s).
HUNG_AFTER = 5.0
# A hung server's checks time out: its kernel takes the connection (the listening socket is
# still open) and nothing answers, or its host is gone. Any other failure says the process is
# alive and means to answer no more: /zato/ready's 503 while it drains (L7STS), then, once
# gunicorn closed its listening socket to stop, a refused connection (L4CON) while its workers
# finish their requests. Shutting those would fail a request that runs to its end (a 504 after
# it ran) and replay a GET on another server; a dead process's own connections are reset.
HUNG_CHECKS = ("L4TOUT", "L6TOUT", "L7TOUT")
# Membership that suddenly lists no server while HAProxy has servers ready and passing their
# checks is taken for lost entries (a Sentinel failover to a replica that was behind: its
# entries had expired), not for every server leaving at once: a server that leaves says so
# first (draining), and a dead one fails its checks. Its servers write their entries again
# within a heartbeat; this long (the default membership ttl) nothing is drained meanwhile.
EMPTY_GRACE = 3.0


@dataclass(frozen=True)
class Command:
    op: str  # add | enable_health | set_addr | set_state | shutdown_sessions | del
    server: str  # HAProxy server name
    state: str = ""  # set_state: ready, drain or maint
    backend: Backend | None = None  # add, set_addr: where the server is
    log: str = ""  # what the controller logs once HAProxy took it
    warn: bool = False  # log it as a warning


def for_member(b: Backend, member_state: str, cur: ServerState | None) -> list[Command]:
    """Commands that make HAProxy's `cur` (None: not in HAProxy) match the member `b`."""
    want = "drain" if member_state == "draining" else "ready"
    if cur is None:
        cmds = [Command("add", b.name, backend=b, log=f"server {b.name} at {b.address} added")]
        return cmds + ([Command("set_state", b.name, "drain")] if want == "drain" else [])
    cmds = []
    if cur.address != b.address:
        cmds.append(
            Command(
                "set_addr", b.name, backend=b, log=f"server {b.name} moved from {cur.address} to {b.address}"
            )
        )
    if cur.admin_state != want:
        cmds.append(
            Command("set_state", b.name, want, log=f"server {b.name} set to {want} (was {cur.admin_state})")
        )
    if not cur.check:  # its checks are off (HAProxy shows no check status): see unchecked()
        # last: a refusal stops the commands after it, and the state above matters more
        cmds.append(Command("enable_health", b.name, log=unchecked(b.name), warn=True))
    return cmds


def unchecked(name: str) -> str:
    """The line said when a member's health checks are turned on: HAProxy's dynamic servers
    start with their checks off, and a controller killed (or refused) between `add server` and
    `enable health` left one so. Before, the next controller only set it ready: a server
    HAProxy showed 'no check' and sent requests to for good, hung or dead."""
    return f"server {name} had its health checks off (an add cut short?); turned them on"


def for_leaver(cur: ServerState, drain_started: float, now: float) -> list[Command]:
    """Commands for a server HAProxy has but membership no longer lists; `drain_started` is
    when the controller first saw it gone (monotonic seconds)."""
    name = cur.name
    if cur.admin_state == "ready":
        return [Command("set_state", name, "drain", log=f"server {name} left the cluster; draining")]
    overdue = now - drain_started > DRAIN_GRACE
    if cur.sessions and not overdue:
        return []
    cmds = [Command("set_state", name, "maint")]
    if overdue and cur.sessions:
        cmds.append(
            Command(
                "shutdown_sessions",
                name,
                warn=True,
                log=f"server {name} still has "
                f"{cur.sessions} sessions after {DRAIN_GRACE:.0f} s; shutting them",
            )
        )
    return cmds + [Command("del", name, log=f"server {name} removed")]


def silent(cur: ServerState) -> bool:
    """DOWN with its last check timed out: what a hung or vanished server shows, unlike one
    that drains (it answers 503, then refuses connections while its requests finish)."""
    return not cur.up and cur.check.lstrip("* ") in HUNG_CHECKS


def shown(cur: ServerState) -> str:
    """What HAProxy says of a server it sends nothing to, for `zato cluster status`: "DOWN
    (last check L7TOUT)", "MAINT" (a check under way, "* L7TOUT", is said as its last one)."""
    check = cur.check.lstrip("* ")
    return f"{cur.status} (last check {check})" if check else cur.status


def for_hung(cur: ServerState, down_since: float, now: float) -> list[Command]:
    """Commands for a member HAProxy has seen DOWN, its checks unanswered (silent), since
    `down_since` (monotonic seconds): shut its sessions once that has lasted HUNG_AFTER.
    HAProxy then replays an idempotent request on another server; any other one ends without
    an answer."""
    if not silent(cur) or not cur.sessions or now - down_since < HUNG_AFTER:
        return []
    return [
        Command(
            "shutdown_sessions",
            cur.name,
            warn=True,
            log=f"server {cur.name} has failed its "
            f"checks for {now - down_since:.0f} s with {cur.sessions} requests on it; shutting them "
            "(idempotent ones are replayed on another server)",
        )
    ]


def keep_when_empty(members: int, actual: dict[str, ServerState], empty_since: float, now: float) -> bool:
    """True: leave HAProxy as it is this tick, membership has lost its entries (EMPTY_GRACE);
    `empty_since`: when the controller first read no member (monotonic seconds)."""
    serving = any(cur.admin_state == "ready" and cur.status.startswith("UP") for cur in actual.values())
    return members == 0 and serving and now - empty_since < EMPTY_GRACE
