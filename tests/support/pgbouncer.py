"""Debian's PgBouncer on loopback in front of the test PostgreSQL, in session or transaction
mode, as a team reaches its database through Supabase's pooler (5432 and 6543)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import conninfo

from tools.pgserver import ServerUnavailable, _free_port, _postgres_account


def find_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)), None
    )


@dataclass
class Pooler:
    """A running PgBouncer: ``dsn(url)`` is ``url`` (a test database on the server it fronts)
    reached through it instead."""

    mode: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path

    def dsn(self, url: str) -> str:
        return conninfo.make_conninfo(url, host="127.0.0.1", port=self.port)

    def log(self) -> str:
        return (self.workdir / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start(admin_dsn: str, mode: str, pool_size: int = 20) -> Pooler:
    """PgBouncer in ``mode`` (session or transaction) with ``pool_size`` server connections per
    database and user, authenticating the server's superuser with its password."""
    binary = find_binary()
    if binary is None:
        raise ServerUnavailable("pgbouncer is not installed (Debian package pgbouncer)")
    server = conninfo.conninfo_to_dict(admin_dsn)
    workdir = Path(tempfile.mkdtemp(prefix=f"migrator-pgbouncer-{mode}-"))
    port = _free_port()
    (workdir / "userlist.txt").write_text(f'"{server["user"]}" "{server["password"]}"\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server['host']} port={server['port']}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {workdir / 'userlist.txt'}\n"
        f"pool_mode = {mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
        f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
    )
    account = _postgres_account()  # PgBouncer refuses to run as root
    if account:
        for path in (workdir, *workdir.iterdir()):
            shutil.chown(path, account)
    process = subprocess.Popen(
        [binary, "-q", str(workdir / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=account,
    )
    pooler = Pooler(mode, port, process, workdir)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            with psycopg.connect(pooler.dsn(admin_dsn), connect_timeout=2):
                return pooler
        except (OSError, psycopg.OperationalError):
            if process.poll() is not None or time.monotonic() > deadline:
                log = pooler.log() if (workdir / "pgbouncer.log").exists() else ""
                pooler.stop()
                raise ServerUnavailable(f"pgbouncer ({mode} mode) did not start:\n{log}") from None
            time.sleep(0.1)
