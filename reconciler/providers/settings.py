"""A destination's manifest settings: the model each destination type owns, and what it derives.

Each destination type is one ``DestinationSettings`` subclass whose ``type`` field is a literal
(``type: Literal["lancedb"]``). The manifest validates an environment's ``destination:`` mapping
against it, the JSON Schema is generated from it, and the engine asks it, without connecting,
for the address shown in plans (``address``), the identity that two environments must not share
(``key``), the environment variables that hold secrets (``secret_variables``), and finally for
an open ``Destination`` (``open``). Nothing outside the provider's module knows its fields.
"""

from __future__ import annotations

import builtins
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from reconciler.providers.base import Destination

#: an environment variable NAME (upper case, as every conventional one is): a key pasted into such a
#: field by mistake is refused, and never echoed, instead of being taken for a name
ENV_VAR_PATTERN = r"^[A-Z_][A-Z0-9_]{0,63}$"


@dataclass(frozen=True)
class DestinationContext:
    """Where a destination is opened from: the environment's name and the manifest's folder.

    Settings stay plain data; anything that depends on where the manifest lives (relative paths)
    is resolved through this, so a settings model never needs the manifest itself.
    """

    environment: str
    folder: Path

    def resolve(self, value: str) -> Path:
        """A local path from the manifest, relative to the manifest's folder (``~`` expanded)."""
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (self.folder / p).resolve()


class DestinationSettings(BaseModel):
    """Base of every destination type's settings (the manifest's ``destination:`` mapping).

    Subclasses declare ``type: Literal["<name>"]`` and their own fields, and implement ``address``
    and ``open``. They are frozen and strict, and unknown keys are errors, like the rest of the
    manifest.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: str

    #: fields holding the NAME of an environment variable whose value is a secret (an API key, a
    #: DSN with a password): their values are never echoed in errors, and the GitHub Action masks
    #: the variables they name
    secret_env_fields: ClassVar[tuple[str, ...]] = ()
    #: field name -> how to fix a value that does not match the field's pattern (manifest errors)
    pattern_hints: ClassVar[dict[str, str]] = {}

    @classmethod
    def type_name(cls) -> str:
        """The manifest's ``type`` this model stands for (the literal of its ``type`` field)."""
        annotation = cls.model_fields["type"].annotation
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is not typing.Literal or len(args) != 1 or not isinstance(args[0], str):
            raise TypeError(f"{cls.__qualname__}.type must be annotated Literal['<type name>'], not {annotation!r}")
        return args[0]

    def address(self) -> str:
        """A stable, secret-free address shown in plans, e.g. ``lancedb:.vectorops/lancedb#docs``.

        Computed without connecting. A saved plan records it; applying the plan after the manifest
        points the environment elsewhere is refused, so it must change whenever the target does.
        """
        raise NotImplementedError

    def key(self, context: DestinationContext) -> str:
        """What identifies the physical destination, so two environments never share one.

        Defaults to ``address()``; override where the address is relative (a path) or where two
        spellings reach the same place.
        """
        return self.address()

    def open(self, context: DestinationContext) -> Destination:
        """Connect (lazily where possible) and return the destination. Raise ``DestinationError``s."""
        raise NotImplementedError

    @classmethod
    def destination_type(cls) -> builtins.type[Destination] | None:
        """The ``Destination`` class ``open`` returns (from its annotation), to read its capabilities
        without connecting; None when the annotation does not name one."""
        from reconciler.providers.base import Destination

        try:
            found = typing.get_type_hints(cls.open).get("return")
        except Exception:  # noqa: BLE001 - an annotation that does not resolve says nothing
            return None
        return found if isinstance(found, type) and issubclass(found, Destination) else None

    def blue_green_refusal(self) -> str | None:
        """Why ``rollout: blue_green`` cannot work on this destination (a sentence that says what to
        do), or None. Blue/green needs an alias readers address (``Capabilities.aliases``)."""
        found = self.destination_type()
        if found is None or not found.capabilities.aliases:
            return (
                f"rollout: blue_green needs a destination with aliases (Pinecone namespace aliases, Qdrant collection "
                f"aliases, a PostgreSQL view), and '{self.type}' has none. Use rollout: in_place (the default)."
            )
        return None

    def secret_variables(self) -> list[str]:
        """The environment variables these settings name as holding secrets."""
        return [str(v) for f in self.secret_env_fields if (v := getattr(self, f, None))]

    @classmethod
    def secret_variables_in(cls, raw: dict[str, Any]) -> list[str]:
        """The same, from an unvalidated ``destination:`` mapping (defaults included), for callers
        that must mask secrets even when the manifest is invalid (the GitHub Action)."""
        out = []
        for name in cls.secret_env_fields:
            value = raw.get(name, cls.model_fields[name].default)
            if isinstance(value, str) and value:
                out.append(value)
        return out


__all__ = ["ENV_VAR_PATTERN", "DestinationContext", "DestinationSettings"]
