"""lancedb's REST client is loaded only when something asks for it (``defer_rest_client``).

Run in a fresh interpreter each time: which modules an import pulls in depends on what the
process imported before, and pytest's own process has imported everything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import sys
import numpy as np
from reconciler.providers.lancedb import LanceDBDestination
from reconciler.records import RecordBatch

dest = LanceDBDestination(uri=sys.argv[1], table="docs")
dest.ensure(8, "cosine")
vectors = np.eye(8, dtype=np.float32)
dest.upsert(RecordBatch.from_rows([f"r{i}" for i in range(8)], vectors, [{"n": i} for i in range(8)], 8))
print("query", dest.query(vectors[3], 1))
print("api modules", sorted(m for m in sys.modules if m.startswith("lance_namespace_urllib3_client.api")))
import lance_namespace_urllib3_client as client
print("client", client.ApiClient.__name__, client.TableApi.__name__, client.__version__ == client.__dict__["__version__"])
print("api loaded", "lance_namespace_urllib3_client.api.table_api" in sys.modules)
"""


def test_local_tables_work_without_the_rest_client_which_still_loads_on_demand(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "db")], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "query ['r3']"
    assert lines[1] == "api modules []"  # nothing of the REST API was built for a local table
    assert lines[2] == "client ApiClient TableApi True"  # yet whoever asks gets the whole client
    assert lines[3] == "api loaded True"
