"""vectorops' destination contract suite, run on this plug-in: every check a destination must pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from vectorops_jsondir import JsonDirSettings

from reconciler.providers.settings import DestinationContext
from reconciler.testing import DestinationContract, Opener


class TestJsonDir(DestinationContract):
    @pytest.fixture
    def open_destination(self, tmp_path: Path) -> Opener:
        settings = JsonDirSettings(type="jsondir", path="indexes", name="docs")
        return lambda: settings.open(DestinationContext(environment="test", folder=tmp_path))
