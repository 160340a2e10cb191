"""A network that fails silently: a TCP proxy on loopback that a test cuts. From then on
nothing passes either way and no connection is closed, as when a link between the migrator
and its pooler dies; ``close`` then ends the client's connections, as its kernel gives up."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from types import TracebackType

from psycopg import conninfo


class Partition:
    """Connections to ``host:port`` through the proxy; ``cut_on`` cuts the network as soon as
    a client sends those bytes, which are dropped with everything after them."""

    def __init__(self, host: str, port: int, cut_on: bytes):
        self.target = (host, port)
        self.cut_on = cut_on
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def dsn(self, url: str) -> str:
        return conninfo.make_conninfo(url, host="127.0.0.1", port=self.port)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            self.clients.append(client)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if from_client and self.cut_on in data:
                self.cut.set()
            if self.cut.is_set():
                if not data:
                    return
                continue  # a dead network: nothing arrives, nothing is closed
            try:
                if data:
                    sink.sendall(data)
                else:
                    sink.shutdown(socket.SHUT_WR)
                    return
            except OSError:
                return

    def close(self) -> None:
        with suppress(OSError):  # closed before
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: no one is let in after
        self.listener.close()
        while self.clients:
            client = self.clients.pop()
            with suppress(OSError):  # a client that left already
                client.shutdown(socket.SHUT_RDWR)  # also wakes the thread reading it, so the close goes out
            client.close()

    def __enter__(self) -> Partition:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
