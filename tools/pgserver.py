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
    """Superuser DSN of a running server and, when we started it, its process and the
    command that starts it again on the same data directory and port."""

    admin_dsn: str
    password: str
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    command: list[str] | None = None
    account: str | None = None

    def shut_down(self) -> None:
        """PostgreSQL's fast shutdown (SIGINT): every session is ended at once, as a restart does."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)

    def start_again(self) -> None:
        assert self.command is not None
        assert self.workdir is not None
        self.process = _launch(self.command, self.workdir, self.account)
        _wait_until_ready(self)

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
    command = [
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
    ]
    server = Server(
        f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port}/postgres",
        password,
        _launch(command, workdir, account),
        workdir,
        command,
        account,
    )
    _wait_until_ready(server)
    return server


def _launch(command: list[str], workdir: Path, account: str | None) -> subprocess.Popen[bytes]:
    log = (workdir / "server.log").open("ab")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, user=account)


def _wait_until_ready(server: Server) -> None:
    assert server.process is not None
    assert server.workdir is not None
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(server.admin_dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                output = (server.workdir / "server.log").read_text(errors="replace")
                server.stop()
                raise ServerUnavailable(f"PostgreSQL did not start:\n{output}") from None
            time.sleep(0.2)


def start_standby(primary: str) -> Server:
    """A hot standby of the server whose superuser DSN is ``primary``, streaming from it
    (pg_basebackup -R), with its databases as they are now."""
    bindir = find_bindir()
    if bindir is None:
        raise ServerUnavailable("PostgreSQL server binaries (initdb, postgres) not found")
    params = conninfo.conninfo_to_dict(primary)
    workdir = Path(tempfile.mkdtemp(prefix="migrator-standby-"))
    data, sockets = workdir / "data", workdir / "sock"
    sockets.mkdir()
    account = _postgres_account()
    if account:
        for path in (workdir, sockets):
            shutil.chown(path, account)
    source = ["-h", str(params["host"]), "-p", str(params["port"]), "-U", str(params["user"])]
    subprocess.run(
        [str(bindir / "pg_basebackup"), *source, "-D", str(data), "-R", "-X", "stream", "--no-sync"],
        check=True,
        capture_output=True,
        user=account,
        env={**os.environ, "PGPASSWORD": str(params["password"])},
    )
    with psycopg.connect(primary) as conn:
        # A standby refuses to start with fewer connections than its primary.
        connections = str(conn.execute("SHOW max_connections").fetchone()[0])  # type: ignore[index]
    port = _free_port()
    command = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets)]
    command += ["-c", "listen_addresses=127.0.0.1", "-c", "hot_standby=on", "-c", f"max_connections={connections}"]
    admin = conninfo.make_conninfo(primary, port=port, dbname="postgres")
    server = Server(admin, str(params["password"]), _launch(command, workdir, account), workdir, command, account)
    _wait_until_ready(server)
    return server


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
        sys.exit("usage: python -m tools.pgserver serve")
    serve()
