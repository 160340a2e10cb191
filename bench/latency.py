"""A network between the contenders and PostgreSQL: a TCP proxy on loopback that holds
every reply from the server for a fixed delay, so each round trip costs about that much,
as between a Nomad client and Cloud SQL. On bare loopback a round trip costs ~50 us and
hides what sending statements one at a time costs in production.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from psycopg import conninfo


@dataclass
class Link:
    """The DSN that goes through the proxy, and how many replies (reads from the server,
    about one per round trip) it has passed on so far."""

    dsn: str
    replies: int = 0


async def _forward(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, link: Link | None = None
) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(65536):
            if link is not None:
                link.replies += 1
                loop.call_later(delay, writer.write, data)  # order is kept: equal delays
            else:
                writer.write(data)
    except ConnectionError:
        pass
    finally:
        await asyncio.sleep(delay * 2)  # let delayed writes go out first
        writer.close()


async def _cancel_connections() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextmanager
def delayed_link(dsn: str, delay_ms: float) -> Iterator[Link]:
    """``dsn`` rewritten to reach its server through the proxy, for the duration."""
    params = conninfo.conninfo_to_dict(dsn)
    target_host, target_port = str(params.get("host", "127.0.0.1")), int(str(params.get("port", 5432)))
    delay = delay_ms / 1000
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    link = Link(dsn)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(target_host, target_port)
        with suppress(asyncio.CancelledError):  # the link is closing: nothing left to report
            await asyncio.gather(
                _forward(client_reader, server_writer, 0.0), _forward(server_reader, client_writer, delay, link)
            )

    async def serve() -> asyncio.Server:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait()
    try:
        link.dsn = conninfo.make_conninfo(dsn, host="127.0.0.1", port=port[0])
        yield link
    finally:
        asyncio.run_coroutine_threadsafe(_cancel_connections(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
