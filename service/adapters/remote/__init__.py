"""Adapters from object stores and hubs through fsspec: URI checks, bounded downloads, and the
resolver that registers unknown names on first use."""

from service.adapters.remote.download import fetch_adapter
from service.adapters.remote.origin import RemoteOrigin
from service.adapters.remote.resolver import AdapterResolver
from service.adapters.remote.uri import AdapterUri, join_uri, parse_adapter_uri

__all__ = ["AdapterResolver", "AdapterUri", "RemoteOrigin", "fetch_adapter", "join_uri", "parse_adapter_uri"]
