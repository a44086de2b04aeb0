"""Layergate gRPC clients: generated stubs (`layergate.clients._gen`) and typed helpers.

This package depends only on grpc, protobuf and orjson: it never imports the engine.
"""

from .client import AsyncClient, Client, credentials

__all__ = ["AsyncClient", "Client", "credentials"]
