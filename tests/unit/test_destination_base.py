"""The base class closes the contract: failures leave a destination translated, features are declared.

A plug-in author writes plain methods; ``Destination`` routes whatever they raise through the
class's ``translate_error`` once, so the CLI reports a destination's failure as one (exit 1, a
message, no traceback) and keeps reporting real bugs as bugs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.errors import (
    DestinationError,
    DestinationRejectedError,
    DestinationStorageError,
    DestinationUnavailableError,
)
from reconciler.providers.base import Capabilities, Destination
from reconciler.providers.memory import MemoryDestination


class Flaky(MemoryDestination):
    """A destination whose service fails the way real ones do."""

    def describe(self):  # type: ignore[no-untyped-def]
        raise ConnectionResetError("connection reset by peer")

    def iter_ids(self, batch_size: int = 10_000) -> Iterator[list[str]]:
        yield ["a"]
        raise TimeoutError("read timed out")

    def read_doc(self, key: str):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    def delete(self, ids):  # type: ignore[no-untyped-def]
        raise TypeError("unsupported operand")  # a bug in the provider: must stay visible as one


class WithSdk(MemoryDestination):
    """A provider that knows what its SDK's exceptions mean."""

    def translate_error(self, exc: Exception, doing: str) -> DestinationError | None:
        if isinstance(exc, KeyError):
            return DestinationRejectedError(f"{self.address}: {doing} failed: the service refused id {exc}")
        return super().translate_error(exc, doing)

    def fetch(self, ids):  # type: ignore[no-untyped-def]
        raise KeyError("doc-1")


def test_standard_io_failures_become_destination_errors_saying_what_was_being_done() -> None:
    dest = Flaky(address="flaky:x")
    with pytest.raises(DestinationUnavailableError, match=r"^flaky:x: describing it failed: ConnectionResetError: connection reset by peer"):
        dest.describe()
    with pytest.raises(DestinationStorageError, match="reading vectorops state failed: OSError: .*No space left on device"):
        dest.read_doc("state")


def test_failures_while_iterating_are_translated_too() -> None:
    stream = Flaky(address="flaky:x").iter_ids()
    assert next(stream) == ["a"]
    with pytest.raises(DestinationUnavailableError, match="listing ids failed: TimeoutError"):
        next(stream)


def test_what_a_provider_does_not_recognise_stays_a_bug() -> None:
    with pytest.raises(TypeError, match="unsupported operand"):
        Flaky(address="flaky:x").delete(["a"])


def test_a_provider_translates_its_own_sdk_errors() -> None:
    with pytest.raises(DestinationRejectedError, match="fetching records failed: the service refused id 'doc-1'"):
        WithSdk(address="sdk:x").fetch(["doc-1"])


def test_secret_values_never_reach_a_translated_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECTORDB_API_KEY", "sk-live-0123456789")

    class Leaky(MemoryDestination):
        def describe(self):  # type: ignore[no-untyped-def]
            raise ConnectionError("refused: https://x/?api_key=sk-live-0123456789")

    with pytest.raises(DestinationUnavailableError) as err:
        Leaky(address="leaky:x").describe()
    assert "sk-live-0123456789" not in str(err.value) and err.value.__cause__ is None


def test_capabilities_are_a_frozen_declaration_defaulting_to_nothing() -> None:
    caps = Capabilities()
    flags = {name: value for name, value in vars(caps).items() if name != "vector_precision"}
    assert flags and not any(flags.values())
    assert caps.vector_precision == "float32"  # the dataset's own precision, compared bit-exactly: nothing declared
    with pytest.raises(AttributeError):
        caps.fill = True  # type: ignore[misc]
    assert Destination.capabilities == Capabilities()


def test_an_undeclared_optional_feature_is_not_there() -> None:
    class Plain(MemoryDestination):
        capabilities = Capabilities()

    plain = Plain()
    with pytest.raises(NotImplementedError, match="does not declare capabilities.snapshots"):
        Destination.tag_version(plain, "t")


def test_a_warning_is_one_line_with_every_secret_masked_and_is_taken_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-7f3a9c2e5b")  # secret-looking by its name
    dest = MemoryDestination(address="memory:x")
    assert dest.take_warnings() == []
    dest.warn("slow build:\r\n  token tok-7f3a9c2e5b, password Hunter2-secret-pw\x1b[31m", secrets=["Hunter2-secret-pw"])
    dest.warn("slow build: token tok-7f3a9c2e5b, password Hunter2-secret-pw\x1b[31m", secrets=["Hunter2-secret-pw"])  # the same again
    (warning,) = dest.take_warnings()
    assert "tok-7f3a9c2e5b" not in warning and "Hunter2" not in warning and "\x1b" not in warning and "\n" not in warning
    assert warning.startswith("slow build: token ***, password ***")
    assert dest.take_warnings() == []
