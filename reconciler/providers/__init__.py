"""Destinations behind one small interface (``base.Destination``), opened from manifest settings.

Each provider module is imported only when an environment uses it, so a LanceDB-only user never
imports the Pinecone SDK (and vice versa).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.errors import DestinationError

if TYPE_CHECKING:
    from reconciler.manifest import LoadedManifest
    from reconciler.providers.base import Destination


def open_destination(manifest: LoadedManifest, env_name: str) -> Destination:
    from reconciler import manifest as m

    settings = manifest.model.environments[env_name].destination
    if isinstance(settings, m.LanceDBDestination):
        from reconciler.providers.lancedb import LanceDBDestination

        uri = settings.uri if "://" in settings.uri else str(manifest.resolve_local(settings.uri))
        return LanceDBDestination(uri=uri, table=settings.table, shown_uri=settings.uri)
    if isinstance(settings, m.PineconeDestination):
        try:
            from reconciler.providers.pinecone import PineconeDestination
        except ImportError as exc:
            raise DestinationError(
                f"environment '{env_name}' uses Pinecone but the Pinecone SDK is not installed ({exc.name})",
                hint="Install the extra: pip install 'vectorops[pinecone]'.",
            ) from None
        return PineconeDestination(
            index=settings.index,
            host=settings.host,
            namespace=settings.namespace,
            api_key_env=settings.api_key_env,
            max_in_flight=settings.max_in_flight,
        )
    raise DestinationError(f"environment '{env_name}': unsupported destination type")  # pragma: no cover


def destination_address(manifest: LoadedManifest, env_name: str) -> str:
    """The address shown in plans, computed without connecting (secret-free)."""
    from reconciler import manifest as m

    settings = manifest.model.environments[env_name].destination
    if isinstance(settings, m.LanceDBDestination):
        return f"lancedb:{settings.uri}#{settings.table}"
    ns = settings.namespace if settings.namespace not in ("", "__default__") else ""
    return f"pinecone:{settings.index}" + (f"/{ns}" if ns else "")


__all__ = ["open_destination", "destination_address"]
