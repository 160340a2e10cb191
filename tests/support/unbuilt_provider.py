"""A provider plugin that configures but refuses every resource: ``python -m tests.support.unbuilt_provider NAME``.

The engine loads a package's default provider (``CheckConfig``, ``Configure``) as soon as the
program declares one of its resources, even a resource that ``--exclude`` keeps out of the
operation. Where the real plugin is not available (pulumi-docker: not served by the module
proxy; pulumi-nomad: Nomad cannot run here), this stands in for that loading step only. Every
resource call (``Check``, ``Diff``, ``Create``, ``Read``, ...) and every invoke is refused with a
message naming the call: a test that reaches one fails instead of getting an invented result.
It is what proves that the engine kept its hands off those resources.
"""

from __future__ import annotations

import sys
from concurrent import futures
from importlib import metadata
from typing import Any

import grpc  # type: ignore[import-untyped]
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc


class UnbuiltProvider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, package: str, version: str) -> None:
        self.package = package
        self.version = version

    def __getattribute__(self, name: str) -> Any:
        if name in _REFUSED:
            return lambda request, context: context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{object.__getattribute__(self, 'package')} provider: {name} refused, the plugin is not built here",
            )
        return object.__getattribute__(self, name)

    def GetPluginInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        return plugin_pb2.PluginInfo(version=self.version)

    def CheckConfig(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        return provider_pb2.ConfigureResponse(
            acceptSecrets=True, supportsPreview=True, acceptResources=True, acceptOutputs=True
        )


_ANSWERED = {"GetPluginInfo", "CheckConfig", "DiffConfig", "Configure"}
_REFUSED = {
    name for name in vars(provider_pb2_grpc.ResourceProviderServicer) if name[:1].isupper() and name not in _ANSWERED
}


def main(package: str) -> None:
    # The version the Python SDK asks the engine for, so the engine finds no mismatch.
    version = metadata.version(f"pulumi_{package}")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(UnbuiltProvider(package, version), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main(sys.argv[1])
