"""The tests' PostgreSQL server survives another pytest session starting (CI runs some inside the suite).

Every pytest session sets its user's temp root back to mode 0700. The server runs as another user,
so with its data directory under that root it lost access, PANICked at its next checkpoint, and
every later pgvector test on that worker failed with "connection refused".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")


def test_the_server_outlives_a_pytest_session_that_starts_beside_it(postgres_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "test_nothing.py").write_text("def test_nothing(tmp_path):\n    assert tmp_path.is_dir()\n")
    inner = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_nothing.py")],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert inner.returncode == 0, inner.stdout + inner.stderr
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # what the server does every few minutes: reads global/pg_control
        assert conn.execute("SELECT 1").fetchone() == (1,)
