"""Destinations behind one small interface (``base.Destination``), opened from manifest settings.

An environment's ``destination:`` is validated against its type's ``DestinationSettings`` model
(found through ``registry``); that model gives the address and opens the destination. Each
provider module imports its SDK only when it opens, so a LanceDB-only user never imports the
Pinecone SDK (and vice versa). The contract is documented in docs/destinations.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconciler.errors import DestinationConfigError, DestinationStorageError, VectorOpsError
from reconciler.providers.settings import DestinationContext, DestinationSettings

if TYPE_CHECKING:
    from reconciler.providers.base import Destination


class EnvironmentDestinations(Protocol):
    """What opening a destination needs of a manifest (``manifest.LoadedManifest`` is one), so
    the providers never import the manifest: its folder, and each environment's settings."""

    @property
    def folder(self) -> Path: ...

    def destination_settings(self, env_name: str) -> DestinationSettings: ...


def destination_context(manifest: EnvironmentDestinations, env_name: str) -> DestinationContext:
    return DestinationContext(environment=env_name, folder=manifest.folder)


def open_destination(manifest: EnvironmentDestinations, env_name: str) -> Destination:
    """Open the environment's destination; failures are ``DestinationError``s naming the environment."""
    settings = manifest.destination_settings(env_name)
    try:
        return settings.open(destination_context(manifest, env_name))
    except VectorOpsError:
        raise
    except OSError as exc:
        from reconciler.providers.base import describe_exception

        raise DestinationStorageError(
            f"environment '{env_name}': opening {settings.address()} failed: {describe_exception(exc)}",
            hint="Check the destination's settings in the manifest and that it can be reached.",
        ) from None
    except ImportError as exc:
        raise DestinationConfigError(
            f"environment '{env_name}': destination type '{settings.type}' needs the module '{exc.name}', which is not installed",
            hint="Install the package that provides this destination type together with its dependencies.",
        ) from None


def destination_address(manifest: EnvironmentDestinations, env_name: str) -> str:
    """The address shown in plans, computed without connecting (secret-free)."""
    return manifest.destination_settings(env_name).address()


__all__ = ["EnvironmentDestinations", "destination_address", "destination_context", "open_destination"]
