"""Markdown rendering of a plan: what a reviewer sees in the PR comment and the job summary."""

from __future__ import annotations

import re
from typing import Any

import pytest

from fixtures.plan_json import with_predicates
from reconciler.render.markdown import render_plan_markdown, summary_line


def env(name: str, add: int = 120, update: int = 45, delete: int = 30, **over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "name": name,
        "dataset": "docs",
        "destination": f"lancedb:.vectorops/lancedb#docs_{name}",
        "current": {"version": "docs-v1", "commit": "a1b2c3d4e5f6" + "0" * 28, "digest": "d1"},
        "desired": {"version": "docs-v2", "commit": "f6e5d4c3b2a1" + "0" * 28, "digest": "d2"},
        "changes": {"add": add, "update": update, "delete": delete},
        "drift": {"level": "ids", "expected_count": 1000, "actual_count": 1000, "missing": 0, "unexpected": 0,
                  "modified": None},
        "blocked": None,
        "samples": {"add": ["id-1", "id-2"], "update": ["id-3"], "delete": ["id-4"]},
    }
    e.update(over)
    return e


def plan(*envs: dict[str, Any], has_changes: bool = True) -> dict[str, Any]:
    return {"format_version": "1", "has_changes": has_changes, "environments": [with_predicates(e) for e in envs]}


def table_rows(md: str) -> list[list[str]]:
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows[1:]]  # skip the header


def test_summary_comes_first_with_totals_across_environments() -> None:
    md = render_plan_markdown(plan(env("staging"), env("prod", add=10, update=0, delete=0)), title="vectorops plan")
    lines = [line for line in md.splitlines() if line]
    assert lines[0] == "### vectorops plan"
    assert lines[1] == "**Plan:** 130 to add, 45 to update, 30 to delete across 2 environments."
    assert md.index("**Plan:**") < md.index("| Environment") < md.index("<details>")


def test_no_changes() -> None:
    same = env("staging", add=0, update=0, delete=0)
    same["desired"] = same["current"]
    md = render_plan_markdown(plan(same, has_changes=False), title="t")
    assert "**No changes.** 1 environment match the manifest." in md
    assert "docs-v1 (`a1b2c3d`) (unchanged)" in md


def test_a_version_move_without_record_changes_is_still_a_change() -> None:
    moved = env("staging", add=0, update=0, delete=0)
    line = summary_line(plan(moved))
    assert line.startswith("**Plan:** 0 to add, 0 to update, 0 to delete across 1 environment")
    assert "1 version move with no record changes" in line


def test_only_changed_environments_are_counted_of_the_total() -> None:
    same = env("prod", add=0, update=0, delete=0)
    same["desired"] = same["current"]
    assert "across 1 environment (of 2)." in summary_line(plan(env("staging"), same))


def test_table_row_per_environment() -> None:
    blocked = env("prod", add=5, update=0, delete=900, current=None, blocked="deletes 90% of records; max_delete_fraction is 0.10")
    blocked["drift"] = {"level": "ids", "expected_count": 10, "actual_count": 12, "missing": 1, "unexpected": 3, "modified": None}
    md = render_plan_markdown(plan(env("staging"), blocked), title="t")
    staging, prod = table_rows(md)
    assert staging == ["`staging`", "`lancedb:.vectorops/lancedb#docs_staging`",
                       "docs-v1 (`a1b2c3d`) → docs-v2 (`f6e5d4c`)", "120", "45", "30", "none (ids)", "no"]
    assert prod[2] == "_not deployed_ → docs-v2 (`f6e5d4c`)"
    assert prod[3:] == ["5", "0", "900", "1 missing, 3 unexpected (ids)", ":no_entry: yes"]
    assert "- :no_entry: `prod` is blocked: deletes 90% of records; max\\_delete\\_fraction is 0.10" in md
    assert "Drift found in `prod`." in md and "Blocked: `prod`." in md


def test_drift_not_checked_at_refresh_none() -> None:
    e = env("staging", drift={"level": "none", "expected_count": 10, "actual_count": None, "missing": None,
                              "unexpected": None, "modified": None})
    assert table_rows(render_plan_markdown(plan(e), title="t"))[0][6] == "not checked"


def test_sample_ids_are_in_collapsible_details_per_environment() -> None:
    md = render_plan_markdown(plan(env("staging"), env("prod")), title="t")
    blocks = re.findall(r"<details><summary>(.*?)</summary>(.*?)</details>", md, re.DOTALL)
    assert [b[0] for b in blocks] == ["staging: sample ids", "prod: sample ids"]
    assert "- **add** (120): `id-1`, `id-2` … and 118 more" in blocks[0][1]
    assert "- **delete** (30): `id-4` … and 29 more" in blocks[0][1]


def test_drift_samples_and_warnings_and_interrupted_apply_are_shown() -> None:
    e = env("staging", warnings=["2 record(s) not in the dataset are kept because policy.prune is false"],
            interrupted={"plan_id": "abc123", "done": 40, "total": 100})
    e["drift"]["missing"] = 2
    e["samples"]["missing"] = ["gone-1", "gone-2"]
    md = render_plan_markdown(plan(e), title="t")
    assert "- **missing** (2): `gone-1`, `gone-2`" in md
    assert "policy.prune is false" in md
    assert "interrupted apply (plan `abc123`, 40 of 100 done)" in md


def test_hostile_ids_cannot_break_the_table_or_inject_html() -> None:
    e = env("staging", destination="lancedb:x|y#t")
    e["samples"]["add"] = ["a|b", "c`d", "<img src=x onerror=alert(1)>", "```", "line\nbreak"]
    e["blocked"] = "see <script>alert(1)</script> | and **bold** @someone"
    md = render_plan_markdown(plan(e), title="t <b>")
    assert len(table_rows(md)[0]) == 8  # the | in the destination did not add a column
    assert "`lancedb:x\\|y#t`" in md
    assert "``c`d``" in md and "```` ``` ````" in md and "`line break`" in md
    assert "<script>" not in md and "&lt;script&gt;" in md and "<b>" not in md
    assert "\\@someone" in md  # no notification from plan text
    assert "<img" not in md.replace("`<img src=x onerror=alert(1)>`", "")  # only inside a code span


def test_no_environments() -> None:
    md = render_plan_markdown(plan(has_changes=False), title="t")
    assert "**No changes.** 0 environments match the manifest." in md
    assert "_The plan holds no environments._" in md


def big_plan(n_envs: int = 8, id_len: int = 1000) -> dict[str, Any]:
    envs = []
    for i in range(n_envs):
        e = env(f"env{i}")
        e["samples"] = {op: [f"{op}{j}-".ljust(id_len, "x") for j in range(10)] for op in ("add", "update", "delete")}
        envs.append(e)
    return plan(*envs)


@pytest.mark.parametrize("limit", [65_536, 20_000, 5_000])
def test_over_the_limit_details_are_cut_and_summary_and_table_kept(limit: int) -> None:
    p = big_plan()
    full = render_plan_markdown(p, title="vectorops plan")
    assert len(full) > 200_000

    md = render_plan_markdown(p, title="vectorops plan", max_chars=limit)

    assert len(md) <= limit
    assert md.startswith("### vectorops plan\n\n**Plan:** 960 to add")
    assert len(table_rows(md)) == 8
    assert md.rstrip().endswith("_Details cut to fit the size limit: the full plan, with every sample id, is in this run's job summary._")
    assert md.count("<details>") == md.count("</details>")  # whole sections only
    assert md.count("<details>") < 8


def test_the_pointer_can_be_changed() -> None:
    md = render_plan_markdown(big_plan(), title="t", max_chars=10_000, cut_pointer="see the artifact")
    assert "see the artifact" in md and "job summary" not in md


def test_within_the_limit_nothing_is_cut() -> None:
    p = plan(env("staging"))
    assert render_plan_markdown(p, title="t", max_chars=100_000) == render_plan_markdown(p, title="t")


def test_even_a_table_too_long_for_the_limit_stays_within_it() -> None:
    p = big_plan(n_envs=400, id_len=10)
    md = render_plan_markdown(p, title="t", max_chars=4_000)
    assert len(md) <= 4_000
    assert "**Plan:**" in md and "Table and notes cut to fit" in md
    assert 0 < len(table_rows(md)) < 400


def test_rendering_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    render_plan_markdown(big_plan(), title="t", max_chars=3000)
    assert capsys.readouterr() == ("", "")
