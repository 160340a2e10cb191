"""A throwaway PostgreSQL server on loopback for the test session."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

SUPERUSER = "postgres"


class ServerUnavailable(RuntimeError):
    pass


def find_bindir() -> Path | None:
    candidates = [os.environ.get("PG_BINDIR", "")]
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(found.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """Superuser DSN of a running server and, when we started it, its process."""

    admin_dsn: str
    password: str
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: PostgreSQL's smart shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _postgres_account() -> str | None:
    """initdb and postgres refuse to run as root; as root, run them as the postgres account."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable("running as root and there is no 'postgres' user to run the server") from None
    return "postgres"


def start() -> Server:
    bindir = find_bindir()
    if bindir is None:
        raise ServerUnavailable("PostgreSQL server binaries (initdb, postgres) not found")
    workdir = Path(tempfile.mkdtemp(prefix="migrator-pg-"))
    data, sockets = workdir / "data", workdir / "sock"
    sockets.mkdir()
    password = secrets.token_urlsafe(18)
    pwfile = workdir / "pw"
    pwfile.write_text(password)
    account = _postgres_account()
    if account:
        for path in (workdir, sockets, pwfile):
            shutil.chown(path, account)
    subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        user=account,
    )
    pwfile.unlink()
    port = _free_port()
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        user=account,
    )
    server = Server(f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port}/postgres", password, process, workdir)
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(server.admin_dsn, connect_timeout=2).close()
            return server
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                output = (workdir / "server.log").read_text(errors="replace")
                server.stop()
                raise ServerUnavailable(f"PostgreSQL did not start:\n{output}") from None
            time.sleep(0.2)


@contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    """A fresh, empty database on the server, dropped afterwards (for tests and benchmarks)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield conninfo.make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def serve() -> None:
    """Start a server, print its superuser DSN, and stop it on SIGTERM or SIGINT.

    For scripts that run many pytest sessions (``.ci/mutation``): one server for all of them.
    """
    server = start()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        print(server.admin_dsn, flush=True)
        stopping.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:] != ["serve"]:
        sys.exit("usage: python -m tests.pgserver serve")
    serve()
