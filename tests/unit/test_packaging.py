"""What the package says about itself is what CI checks: supported Pythons and dependency bounds.

The bounds are proved by `.ci/run` (the lowest versions they allow pass the tests); these checks
keep the pieces of that proof from drifting apart: the classifiers, the README's "Python A to B",
the Pythons `.ci/run` runs, and the `test-lowest` extra that the lowest-versions step installs.
"""

from __future__ import annotations

import re
from importlib.metadata import metadata, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CI = (ROOT / ".ci" / "run").read_text()
README = (ROOT / "README.md").read_text()


def classifier_pythons() -> list[str]:
    found = [re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c) for c in metadata("vectorops").get_all("Classifier") or []]
    return sorted((m.group(1) for m in found if m), key=lambda v: int(v.split(".")[1]))


def extra_requirements(extra: str) -> list[str]:
    marker = re.compile(rf";\s*extra\s*==\s*['\"]{re.escape(extra)}['\"]\s*$")
    return [marker.sub("", r).strip() for r in requires("vectorops") or [] if marker.search(r)]


def test_readme_classifiers_requires_python_and_ci_name_the_same_pythons() -> None:
    pythons = classifier_pythons()
    assert pythons == ["3.10", "3.11", "3.12", "3.13"]
    first, last = pythons[0], pythons[-1]
    assert f"Python {first} to {last}, git." in README
    assert metadata("vectorops")["Requires-Python"] == f">={first}"
    # .ci/run: the README's command on python3 (3.11 here), the lowest versions on the lowest Python,
    # the unit tests on each newer one
    assert 'lowest_python="$(python_for 3.10)"' in CI
    assert re.search(r"^for version in 3\.12 3\.13; do$", CI, re.MULTILINE)


def test_ci_installs_the_lowest_versions_the_bounds_allow_after_the_readme_command() -> None:
    readme_command = re.search(r"\*\*2\. Run the whole test suite\*\*.*?```bash\n(.+?)\n```", README, re.DOTALL)
    assert readme_command and readme_command.group(1) in CI.splitlines()
    lowest = CI.index("--resolution lowest-direct -e '.[test-lowest]'")
    assert CI.index(readme_command.group(1)) < lowest
    assert "UV_PYTHON_DOWNLOADS=never" in CI  # never an interpreter from outside this machine


def test_test_lowest_holds_every_destination_extra_and_no_tool_that_lifts_floors() -> None:
    lowest = extra_requirements("test-lowest")
    destinations = {"pinecone", "qdrant", "pgvector"}
    assert set(metadata("vectorops").get_all("Provides-Extra") or []) >= destinations
    assert any(r.startswith("vectorops[") and destinations <= set(r[len("vectorops["):r.index("]")].split(",")) for r in lowest), lowest
    names = {re.split(r"[\[<>=!~;\s]", r, maxsplit=1)[0].lower() for r in lowest}
    assert not names & {"moto", "schemathesis"}, names
    # the full test extra is test-lowest plus those tools
    assert "vectorops[test-lowest]" in extra_requirements("test")
