"""Hosts on one machine: Linux network namespaces joined by a bridge, and the faults a real
network has (tests/hosts, bench/faults).

Every name starts with a prefix unique to this process (`zl<pid>`; `$ZATO_LAB_PREFIX<pid>` when
set, the pid then cut to fit interface names: `links42`), so a lab never touches
anything it did not create; close() removes the namespaces (which takes their veths and
nftables tables with them), the bridge and every process started in a namespace.

Faults are nftables drop rules inside the host's own namespace (peers see no RST, no FIN:
packets just vanish), `numgen random` for loss. This kernel has no `tc netem`, so latency is
added by the lab's delaying forwarder (tests/hosts/forward.py), not here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
FAULT_TABLE = "zlfault"
ROUTE_TABLE = "zlroute"  # the lab's wiring (DNAT to a host's own routes), never a fault


class LabError(Exception):
    """The lab could not be built (for example: the kernel refuses network namespaces)."""


def sh(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=30)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {(proc.stderr or proc.stdout).strip()}")
    return proc


@dataclass(frozen=True)
class Host:
    """One network namespace with one address on the lab's bridge."""

    name: str  # short: s1, redis, lb, client
    ns: str  # namespace name
    ip: str

    def argv(self, *cmd: str) -> list[str]:
        """`cmd` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *cmd]


class Net:
    """A bridge in the root namespace (gateway .1, plus extra addresses for the services the
    lab forwards) and one namespace per host, each with a veth into the bridge."""

    def __init__(self, prefix: str = ""):
        pid = os.getpid()
        base = os.environ.get("ZATO_LAB_PREFIX", "zl")
        self.prefix = prefix or f"{base}{pid % 10 ** max(2, 7 - len(base))}"
        self.subnet = f"10.{200 + pid % 50}.{pid // 50 % 250}"
        self.bridge = f"{self.prefix}br"
        self.gateway = f"{self.subnet}.1"
        self.hosts: dict[str, Host] = {}
        self._aliases: list[str] = []
        self._closed = False

    def create(self) -> Net:
        if not os.path.isdir("/proc/self/ns") or os.geteuid() != 0:
            raise LabError("the multi-host lab needs root and network namespaces (run as root)")
        try:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
        except LabError as e:
            raise LabError(f"the kernel refuses a bridge for the multi-host lab: {e}") from None
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        return self

    def alias(self, last: int) -> str:
        """One more address of the root namespace on the bridge (where a forwarder listens)."""
        ip = f"{self.subnet}.{last}"
        sh("ip", "addr", "add", f"{ip}/24", "dev", self.bridge)
        self._aliases.append(ip)
        return ip

    def add_host(self, name: str, last: int) -> Host:
        host = Host(name, f"{self.prefix}-{name}", f"{self.subnet}.{last}")
        veth, peer = f"{self.prefix}{name}", f"{self.prefix}{name}p"
        if len(peer) > 15:
            raise LabError(f"interface name {peer!r} is too long (15 characters at most)")
        try:
            sh("ip", "netns", "add", host.ns)
        except LabError as e:
            raise LabError(f"the kernel refuses network namespaces: {e}") from None
        self.hosts[name] = host
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", peer)
        sh("ip", "link", "set", peer, "netns", host.ns)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        sh("ip", "-n", host.ns, "addr", "add", f"{host.ip}/24", "dev", peer)
        sh("ip", "-n", host.ns, "link", "set", peer, "up")
        sh("ip", "-n", host.ns, "link", "set", "lo", "up")
        return host

    def redirect(self, host: Host, ip: str, port: int, to_ip: str, to_port: int) -> None:
        """Connections the host opens to ip:port go to to_ip:to_port instead (DNAT in its own
        namespace, before its fault rules: those see to_ip:to_port). heal() leaves it."""
        script = [
            f"table ip {ROUTE_TABLE} {{",
            "  chain output { type nat hook output priority -100; policy accept; }",
            "}",
            f"add rule ip {ROUTE_TABLE} output ip daddr {ip} tcp dport {port} dnat to {to_ip}:{to_port}",
        ]
        sh("ip", "netns", "exec", host.ns, "nft", "-f", "-", input="\n".join(script) + "\n")

    # -- faults: each one function, each undone by heal() -----------------------------------
    def _rules(self, host: Host, *rules: str) -> None:
        """Add rules to the host's fault table (created on first use) inside its namespace."""
        script = [
            f"table inet {FAULT_TABLE} {{",
            "  chain input { type filter hook input priority -10; policy accept; }",
            "  chain output { type filter hook output priority -10; policy accept; }",
            "}",
        ]
        script += [f"add rule inet {FAULT_TABLE} {r}" for r in rules]
        sh("ip", "netns", "exec", host.ns, "nft", "-f", "-", input="\n".join(script) + "\n")

    def blackhole(self, host: Host) -> None:
        """Every packet of `host` dropped both ways (loopback excepted): it vanishes."""
        self._rules(host, 'input iifname != "lo" drop', 'output oifname != "lo" drop')

    def partition(self, a: Host, b: Host | str, one_way: bool = False) -> None:
        """Cut a from b (a Host or an address). one_way: only a -> b is dropped (b's packets
        still reach a; a's replies do not reach b)."""
        ip = b.ip if isinstance(b, Host) else b
        self._rules(a, f"output ip daddr {ip} drop", *(() if one_way else (f"input ip saddr {ip} drop",)))

    def cut_port(self, a: Host, ip: str, port: int, only: str = "") -> None:
        """Cut a from one service (ip:port), everything else still flows. only="in": what the
        service sends a is dropped (a's packets still reach it); only="out": the reverse."""
        rules = {
            "out": f"output ip daddr {ip} tcp dport {port} drop",
            "in": f"input ip saddr {ip} tcp sport {port} drop",
        }
        self._rules(a, *(rule for way, rule in rules.items() if only in ("", way)))

    def loss(self, host: Host, percent: int, peer: Host | None = None) -> None:
        """Drop `percent` % of the host's packets at random, each way; with `peer`, only those
        between the two (the host's other links stay clean)."""
        into, out = ('iifname != "lo"', 'oifname != "lo"')
        if peer:
            into, out = f"ip saddr {peer.ip}", f"ip daddr {peer.ip}"
        self._rules(
            host,
            f"input {into} numgen random mod 100 < {percent} drop",
            f"output {out} numgen random mod 100 < {percent} drop",
        )

    def heal(self, host: Host) -> None:
        sh("ip", "netns", "exec", host.ns, "nft", "delete", "table", "inet", FAULT_TABLE, check=False)

    # -- processes ------------------------------------------------------------------------------
    def pids(self, host: Host) -> list[int]:
        out = sh("ip", "netns", "pids", host.ns, check=False).stdout
        return [int(p) for p in out.split()]

    def in_host(self, host: Host, fn: Callable[[], object]) -> threading.Thread:
        """Run fn in a new thread that lives in the host's namespace (its sockets are the
        host's): the client host's checkers run this way inside the test process."""

        def enter() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{host.ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise LabError(f"setns({host.ns}): {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(fd)
            fn()

        thread = threading.Thread(target=enter, daemon=True, name=f"in-{host.name}")
        thread.start()
        return thread

    def close(self) -> list[str]:
        """Kill what runs in our namespaces (by pid), delete them and the bridge. Returns what
        could not be removed (empty when clean)."""
        if self._closed:
            return []
        self._closed = True
        for host in self.hosts.values():
            for pid in self.pids(host):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(self.pids(h) for h in self.hosts.values()):
            time.sleep(0.05)
        for host in self.hosts.values():
            sh("ip", "link", "del", f"{self.prefix}{host.name}", check=False)  # its peer goes with it
            sh("ip", "netns", "del", host.ns, check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        return leftovers(self.prefix)


def leftovers(prefix: str) -> list[str]:
    """Namespaces and links whose name starts with `prefix` (what a clean teardown leaves: none)."""
    names = [n.split()[0] for n in sh("ip", "netns", "list", check=False).stdout.splitlines() if n.strip()]
    links = [
        line.split(":")[1].strip().split("@")[0]
        for line in sh("ip", "-o", "link", check=False).stdout.splitlines()
    ]
    return [n for n in names + links if n.startswith(prefix)]
