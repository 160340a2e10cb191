"""The project's program as a language runtime for ``pulumi --client``: ``python -m tests.support.engine_host``.

The engine runs a Python program through the ``pulumi-language-python`` plugin, which the
module proxy does not serve. ``pulumi preview|up|refresh --client ADDRESS`` is the engine's own
way to use a language runtime that is already running (the Automation API runs inline programs
with it); this serves the SDK's runtime for ``__main__.py`` of the current directory, as the
plugin would run it, and prints its port. One process serves one engine operation.
"""

from __future__ import annotations

import runpy
from concurrent import futures
from pathlib import Path

import grpc  # type: ignore[import-untyped]
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2_grpc


def run_program() -> None:
    runpy.run_path(str(Path.cwd() / "__main__.py"), run_name="__main__")


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(run_program), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
