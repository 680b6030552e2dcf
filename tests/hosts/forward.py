"""The lab's wire: a TCP forwarder that can delay (this kernel has no `tc netem`).

    python -m tests.hosts.forward LISTEN_IP:PORT=TARGET_IP:PORT ...

One asyncio process serves every route. It prints "ready" once all routes listen, then reads
commands on stdin, one a line:

    delay PORT MS JITTER_MS     every chunk through the route listening on PORT, both ways,
                                is written MS +- JITTER_MS later (order kept: a chunk is never
                                sent before the one read before it)

Each server host reaches Redis through its own route, so latency on "one host's link" is the
delay of that host's route. Packet loss is not done here: nftables drops packets (net.py).
"""

from __future__ import annotations

import asyncio
import random
import sys


class Route:
    def __init__(self, listen: str, target: str):
        self.listen_ip, port = listen.rsplit(":", 1)
        self.port = int(port)
        host, tport = target.rsplit(":", 1)
        self.target = (host, int(tport))
        self.delay = 0.0
        self.jitter = 0.0

    def lag(self) -> float:
        if not self.delay and not self.jitter:
            return 0.0
        return max(0.0, self.delay + random.uniform(-self.jitter, self.jitter))


async def pipe(route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    loop = asyncio.get_running_loop()
    last_due = 0.0
    try:
        while data := await reader.read(65536):
            lag = route.lag()
            if not lag and last_due <= loop.time():
                writer.write(data)
            else:
                last_due = max(loop.time() + lag, last_due)
                loop.call_at(last_due, writer.write, data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        loop.call_at(max(last_due, loop.time()), writer.close)


async def serve(route: Route) -> asyncio.AbstractServer:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*route.target), 5)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return
        await asyncio.gather(pipe(route, reader, up_writer), pipe(route, up_reader, writer))

    return await asyncio.start_server(accept, route.listen_ip, route.port, reuse_address=True)


async def control(routes: dict[int, Route]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode().split()
        if len(words) == 4 and words[0] == "delay" and int(words[1]) in routes:
            route = routes[int(words[1])]
            route.delay, route.jitter = float(words[2]) / 1000, float(words[3]) / 1000
            print(f"delay {route.port} {words[2]} {words[3]}", flush=True)
        else:
            print(f"error: cannot understand {line.decode().strip()!r}", flush=True)


async def main(specs: list[str]) -> None:
    routes = {}
    for spec in specs:
        listen, _, target = spec.partition("=")
        route = Route(listen, target)
        routes[route.port] = route
    for route in routes.values():
        await serve(route)
    print("ready", flush=True)
    await control(routes)  # returns when stdin closes: the lab is done with us


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
