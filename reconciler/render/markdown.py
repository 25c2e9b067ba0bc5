"""Markdown rendering of a plan (SPEC §4 JSON) for PR comments and GitHub job summaries.

Works from the public plan dict only, so a comment can never say something `plan --json` did not.
A reviewer reads the first line and the table; sample ids are detail, folded into `<details>` and
the first thing dropped when the text must fit a size limit (a PR comment holds 65,536 characters).
Every value that came from a dataset or a manifest (ids, names, sentences) is escaped, because a
crafted id must not be able to break the table, close a code span or inject HTML into the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler.redact import printable
from reconciler.render.rollout import action_sentence, slot_summary

DEFAULT_CUT_POINTER = "the full plan, with every sample id, is in this run's job summary"
_OPS = ("add", "update", "delete")
_DRIFT_KINDS = ("missing", "unexpected", "modified")
_SAMPLE_ORDER = ("add", "update", "delete", "missing", "unexpected", "modified")


def render_plan_markdown(
    plan: Mapping[str, Any],
    *,
    title: str,
    max_chars: int | None = None,
    cut_pointer: str = DEFAULT_CUT_POINTER,
) -> str:
    """Render ``plan`` as Markdown: summary line, per-environment table, notes, then details.

    With ``max_chars``, the result never exceeds it: details are dropped first (whole sections,
    with a note that says where the rest is: ``cut_pointer``, our own Markdown, not escaped), then
    table rows, then the text is cut hard as a last resort. The summary line is always kept.
    """
    envs = [e for e in plan.get("environments") or [] if isinstance(e, Mapping)]
    head = [f"### {_text(title)}", "", summary_line(plan)]
    table = _table(envs)
    notes = _notes(envs)
    details = [d for d in (_details(e) for e in envs) if d]

    full = _join(head, table, notes, details)
    if max_chars is None or len(full) <= max_chars:
        return full
    return _fit(head, table, notes, details, max_chars, cut_pointer)


def summary_line(plan: Mapping[str, Any]) -> str:
    """One line a reviewer can act on: the totals across environments, or "No changes"."""
    envs = [e for e in plan.get("environments") or [] if isinstance(e, Mapping)]
    totals = {op: sum(_int((e.get("changes") or {}).get(op)) for e in envs) for op in _OPS}
    drifted = [e for e in envs if e.get("has_drift") is True]
    blocked = [e for e in envs if e.get("blocked")]
    changed = [e for e in envs if e.get("has_changes") is True]
    has_changes = bool(plan.get("has_changes")) or bool(changed)

    if not has_changes:
        line = f"**No changes.** {_count(len(envs), 'environment')} match the manifest."
    else:
        line = (
            f"**Plan:** {totals['add']} to add, {totals['update']} to update, "
            f"{totals['delete']} to delete across {_count(len(changed) or len(envs), 'environment')}"
        )
        if len(changed) < len(envs):
            line += f" (of {len(envs)})"
        moves_only = [e for e in changed if not any(_int((e.get("changes") or {}).get(op)) for op in _OPS)]
        if moves_only:
            line += f"; {_count(len(moves_only), 'version move')} with no record changes"
        line += "."
    if drifted:
        line += f" Drift found in {_names(drifted)}."
    if blocked:
        line += f" :no_entry: Blocked: {_names(blocked)}."
    return line


# -- table --------------------------------------------------------------------------------------


def _table(envs: Sequence[Mapping[str, Any]]) -> list[str]:
    if not envs:
        return ["_The plan holds no environments._"]
    rows = [
        "| Environment | Destination | Version (current → desired) | + add | ~ update | − delete | Drift | Blocked |",
        "|---|---|---|--:|--:|--:|---|---|",
    ]
    for e in envs:
        ch = e.get("changes") or {}
        rows.append(
            "| "
            + " | ".join(
                [
                    _code(e.get("name", "?"), cell=True),
                    _code(e.get("destination", "?"), cell=True),
                    _versions(e.get("current"), e.get("desired")),
                    str(_int(ch.get("add"))),
                    str(_int(ch.get("update"))),
                    str(_int(ch.get("delete"))),
                    _drift_cell(e.get("drift")),
                    ":no_entry: yes" if e.get("blocked") else "no",
                ]
            )
            + " |"
        )
    return rows


def _versions(current: Any, desired: Any) -> str:
    want = _version(desired)
    if not isinstance(current, Mapping):
        return f"_not deployed_ → {want}"
    have = _version(current)
    same = all(current.get(k) == (desired or {}).get(k) for k in ("version", "commit", "digest"))
    return f"{have} (unchanged)" if same else f"{have} → {want}"


def _version(ref: Any) -> str:
    if not isinstance(ref, Mapping):
        return "?"
    name = _cell(str(ref.get("version") or "?"))
    commit = str(ref.get("commit") or "")
    return f"{name} ({_code(commit[:7], cell=True)})" if commit else name


def _drift_cell(drift: Any) -> str:
    if not isinstance(drift, Mapping):
        return "?"
    level = str(drift.get("level") or "?")
    if level == "none":
        return "not checked"
    found = [f"{_int(drift.get(k))} {k}" for k in _DRIFT_KINDS if _int(drift.get(k))]
    return _cell(", ".join(found) + f" ({level})") if found else _cell(f"none ({level})")


# -- notes and details --------------------------------------------------------------------------


def _notes(envs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why an environment is blocked, interrupted applies and warnings: short, and never cut."""
    out: list[str] = []
    for e in envs:
        name = _code(e.get("name", "?"))
        if e.get("blocked"):
            out.append(f"- :no_entry: {name} is blocked: {_text(str(e['blocked']))}")
        intr = e.get("interrupted")
        if isinstance(intr, Mapping):
            out.append(
                f"- :warning: {name} has an interrupted apply (plan {_code(intr.get('plan_id', '?'))}, "
                f"{_int(intr.get('done'))} of {_int(intr.get('total'))} done); the next apply finishes it."
            )
        out.extend(f"- :warning: {name}: {_text(str(w))}" for w in e.get("warnings") or [])
        rollout = e.get("rollout")
        if isinstance(rollout, Mapping) and rollout.get("strategy") == "blue_green":
            live = _code(rollout["live"]) if rollout.get("live") else "nothing yet"
            out.append(
                f"- :large_blue_circle: {name} blue/green: the alias is on {live}; this apply {_text(action_sentence(rollout))}. "
                f"Slots: {_text(slot_summary(rollout))}."
            )
    return out


def _details(env: Mapping[str, Any]) -> str:
    samples = env.get("samples") or {}
    if not isinstance(samples, Mapping):
        return ""
    kinds = [k for k in _SAMPLE_ORDER if samples.get(k)] + sorted(
        k for k in samples if k not in _SAMPLE_ORDER and samples.get(k)
    )
    if not kinds:
        return ""
    counts = {**(env.get("changes") or {}), **(env.get("drift") or {})}
    lines = [
        f"<details><summary>{html.escape(' '.join(str(env.get('name', '?')).split()))}: sample ids</summary>",
        "",
    ]
    for k in kinds:
        ids: Iterable[Any] = samples[k]
        listed = list(ids)
        total = _int(counts.get(k)) if isinstance(counts.get(k), int) else len(listed)
        more = f" … and {total - len(listed)} more" if total > len(listed) else ""
        lines.append(f"- **{_text(k)}** ({total}): " + ", ".join(_code(i) for i in listed) + more)
    lines += ["", "</details>"]
    return "\n".join(lines)


# -- fitting a size limit -----------------------------------------------------------------------


def _fit(
    head: list[str], table: list[str], notes: list[str], details: list[str], limit: int, pointer: str
) -> str:
    cut_note = f"_Details cut to fit the size limit: {pointer}._"
    kept: list[str] = []
    for d in details:
        if len(_join(head, table, notes, [*kept, d], cut_note)) > limit:
            break
        kept.append(d)
    text = _join(head, table, notes, kept, cut_note)
    if len(text) <= limit:
        return text
    # Too many environments for even the table: keep as many rows as fit, then say so.
    rows_note = f"_Table and notes cut to fit the size limit: {pointer}._"
    body = table[:2]
    for row in table[2:]:
        if len(_join(head, [*body, row], [], [], rows_note)) > limit:
            break
        body.append(row)
    text = _join(head, body, [], [], rows_note)
    return text if len(text) <= limit else text[: max(0, limit)]


def _join(head: list[str], table: list[str], notes: list[str], details: list[str], tail: str = "") -> str:
    parts = ["\n".join(head), "\n".join(table)]
    if notes:
        parts.append("\n".join(notes))
    parts += details
    if tail:
        parts.append(tail)
    return "\n\n".join(parts) + "\n"


# -- escaping -----------------------------------------------------------------------------------


def _text(s: str) -> str:
    """Plain text from outside: no HTML, no line breaks, no Markdown emphasis or links."""
    s = html.escape(printable(" ".join(str(s).split())), quote=False)
    return re.sub(r"([\\`*_\[\]|#@])", r"\\\1", s)


def _cell(s: str) -> str:
    return _text(s)


def _code(value: Any, *, cell: bool = False) -> str:
    """A code span that holds any string: fence longer than any backtick run inside it."""
    s = printable(" ".join(str(value).split())) or " "
    if cell:
        s = s.replace("|", "\\|")  # GFM splits cells on | even inside code spans
    fence = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


# -- small helpers ------------------------------------------------------------------------------


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _names(envs: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(_code(e.get("name", "?")) for e in envs)
