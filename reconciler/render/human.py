"""Human output, rendered from the same JSON as `--json` so the two can never disagree.

Functions return text; the CLI decides where it goes. Colour is rich markup, stripped by the
console when colour is off or stdout is not a terminal.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from reconciler.redact import printable
from reconciler.render.rollout import rollout_lines


def _short(ref: dict[str, Any] | None) -> str:
    if not ref:
        return "(nothing deployed)"
    return f"{ref['version']} ({ref['commit'][:7]})"


WIDTH = 80
ID_INDENT = " " * 12


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 environment', '2 environments', '1,638 records': counts written for people."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def id_lines(ids: list[str], total: int, width: int = WIDTH, indent: str = ID_INDENT) -> list[str]:
    """Sample ids on their own lines, wrapped between ids (never inside one) to fit ``width``.

    Ids are escaped for rich markup: an id such as ``[red]`` is data, not a style.
    """

    if not ids:
        return []
    more = total - len(ids)
    ids = [printable(i) for i in ids]  # ids come from data: no line breaks
    words = [f"{i}," for i in ids[:-1]] + [ids[-1] + ("," if more > 0 else "")]
    if more > 0:
        words.append(f"… {more:,} more")
    lines: list[str] = []
    current = indent
    for w in words:
        if current.strip() and len(current) + 1 + len(w) > width:
            lines.append(current)
            current = indent
        current = f"{current} {w}" if current.strip() else current + w
    lines.append(current)
    return [escape(line) for line in lines]


def drift_line(drift: dict[str, Any]) -> str:
    level = drift.get("level")
    if level == "none":
        return "not checked (--refresh none)"
    parts = []
    for key in ("missing", "unexpected", "modified"):
        value = drift.get(key)
        if value:
            parts.append(f"{value:,} {key}")
    found = drift.get("actual_count")
    expected = drift.get("expected_count")
    counted = f"refresh: {level}; {_num(found)} records, {_num(expected)} expected"
    if level == "sample" and drift.get("sampled"):
        bound = drift.get("drifted_fraction_upper_bound") or 0.0
        counted += (
            f"; sampled {drift['sampled']:,}, {drift.get('sample_drifted', 0):,} drifted: "
            f"at most {bound:.3%} of records drifted (95% confidence)"
        )
    if not parts:
        return f"none ({counted})"
    return f"[yellow]{', '.join(parts)}[/] ({counted})"


def shards_line(shards: dict[str, Any]) -> str:
    """How much of a sharded dataset this plan had to decode (the rest came from the hash cache)."""
    files = shards.get("decoded_files", [])
    named = ": " + ", ".join(escape(f) for f in files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "") if files else ""
    return f"{shards['decoded']:,} of {shards['total']:,} shards decoded ({shards['from_cache']:,} from the hash cache){named}"


def _num(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def render_environment(env: dict[str, Any], width: int = WIDTH) -> list[str]:
    c = env["changes"]
    s = env.get("samples", {})
    lines = [f"[bold]{env['name']}[/]  {env['destination']}  (dataset {env['dataset']})"]
    cur, des = env.get("current"), env["desired"]
    if cur and cur.get("commit") == des["commit"] and cur.get("version") == des["version"]:
        lines.append(f"  version   {_short(des)}  (deployed)")
    else:
        lines.append(f"  version   {_short(cur)} → [bold]{_short(des)}[/]")
    lines.extend(rollout_lines(env.get("rollout"), planned=True))
    if env.get("interrupted"):
        i = env["interrupted"]
        lines.append(
            f"  [red]interrupted[/] apply of {i['version']} ({i['commit'][:7]}) by {i['actor']} at {i['started_at']}: "
            f"{i['done']:,} of {i['total']:,} changes recorded as written; this apply finishes it"
        )
    detail = env.get("update_detail") or {}
    upd_note = f" ({detail.get('vector', 0):,} vector, {detail.get('metadata', 0):,} metadata-only)" if c["update"] else ""
    lines.append(f"  [green]+ {c['add']:>7,} to add[/]")
    lines.extend(id_lines(s.get("add", []), c["add"], width))
    lines.append(f"  [yellow]~ {c['update']:>7,} to update[/]{upd_note}")
    lines.extend(id_lines(s.get("update", []), c["update"], width))
    lines.append(f"  [red]- {c['delete']:>7,} to delete[/]")
    lines.extend(id_lines(s.get("delete", []), c["delete"], width))
    lines.append(f"  drift     {drift_line(env['drift'])}")
    if env.get("shards"):
        lines.append(f"  shards    {shards_line(env['shards'])}")
    for key in ("missing", "unexpected", "modified"):
        if s.get(key) and env["drift"].get(key):
            lines.append(f"            {key}:")
            lines.extend(id_lines(s[key], env["drift"][key], width, indent=ID_INDENT + "  "))
    lines.extend(f"  [yellow]warning[/]   {w}" for w in env.get("warnings", []))
    if env.get("suspended"):
        lines.append(f"  [yellow]suspended[/] {suspension_line(env['suspended'])}")
    if env.get("blocked"):
        lines.append(f"  [bold red]blocked[/]   {env['blocked']}")
    return lines


def suspension_line(suspended: dict[str, Any]) -> str:
    """'by ann@laptop since 2026-…: reason; the agent does not apply it (vectorops resume ENV)'."""
    reason = f": {escape(printable(suspended['reason']))}" if suspended.get("reason") else ""
    return f"by {escape(printable(suspended['by']))} since {suspended['at']}{reason}; the reconcile agent plans it but does not apply it"


def summary_line(plan: dict[str, Any]) -> str:
    envs = plan["environments"]
    add = sum(e["changes"]["add"] for e in envs)
    upd = sum(e["changes"]["update"] for e in envs)
    dele = sum(e["changes"]["delete"] for e in envs)
    blocked = [e["name"] for e in envs if e.get("blocked")]
    moving = [e for e in envs if e.get("has_changes") is True]
    if not moving:
        matches = "matches its pinned version" if len(envs) == 1 else "match their pinned versions"
        text = f"No changes. {plural(len(envs), 'environment')} {matches}."
    else:
        scope = plural(len(envs), "environment") if len(moving) == len(envs) == 1 else f"{len(moving)} of {plural(len(envs), 'environment')}"
        text = f"Plan: {add:,} to add, {upd:,} to update, {dele:,} to delete in {scope}."
    drifted = [e["name"] for e in envs if e.get("has_drift") is True]
    if drifted:
        text += f" Drift found in {', '.join(drifted)}."
    if blocked:
        text += f" Blocked: {', '.join(blocked)}."
    return text


def render_plan(plan: dict[str, Any], width: int = WIDTH) -> str:
    out: list[str] = []
    for env in plan["environments"]:
        out.extend(render_environment(env, width))
        out.append("")
    out.append(f"[bold]{summary_line(plan)}[/]")
    return "\n".join(out)


def render_status(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        colour = {"Synced": "green", "OutOfSync": "yellow", "Drifted": "red"}.get(r["status"], "white")
        out.append(f"[bold]{r['name']}[/]  [{colour}]{r['status']}[/]  {r['destination']}")
        verdicts: dict[bool | None, str] = {True: "  canaries passed", False: "  [red]canaries failed[/]"}
        verdict = verdicts.get(r.get("validated"), "")
        out.append(f"  deployed  {_short(r.get('deployed'))}{verdict}")
        out.append(f"  desired   {_short(r.get('desired'))}")
        out.extend(rollout_lines(r.get("rollout"), planned=False))
        if r.get("last_apply"):
            la = r["last_apply"]
            out.append(f"  last      {la['finished_at']} by {la['actor']}: {la['operation']} → {la['to']['version']} ({la['result']})")
        if r.get("lock"):
            lock = r["lock"]
            out.append(
                f"  [red]locked[/]    by {lock['owner']} ({lock['operation']} since {lock['acquired_at']}, lease expires "
                f"{lock['expires_at']}; lock id {lock['lock_id']})"
            )
        if r.get("suspended"):
            out.append(f"  [yellow]suspended[/] {suspension_line(r['suspended'])}")
        if r.get("interrupted"):
            out.append(f"  [red]interrupted[/] apply of {r['interrupted']['version']}: run `vectorops apply` to finish it")
    return "\n".join(out)


def render_history(name: str, entries: list[dict[str, Any]], total: int | None = None) -> str:
    if not entries:
        return f"{name}: no applies recorded yet."
    total = len(entries) if total is None else total
    shown = plural(total, "apply", "applies") if total == len(entries) else f"{len(entries):,} of {plural(total, 'apply', 'applies')}"
    out = [f"[bold]{name}[/]: {shown} (newest first)"]
    for e in entries:
        frm = e["from"]["version"] if e.get("from") else "∅"
        c = e["counts"]
        first = e.get("intent_serial")
        serials = f"#{first}-{e['serial']}" if first is not None and first != e["serial"] else f"#{e['serial']}"
        when = e["started_at"] if e["result"] in ("interrupted", "in progress") else e["finished_at"]
        took = "" if e["result"] in ("interrupted", "in progress") else f"  {e['duration_s']:.1f}s"
        out.append(
            f"  {serials:<7} {when}  {e['operation']:<8} {frm} → {e['to']['version']} ({e['to']['commit'][:7]})  "
            + (f"+{c.get('add', 0):,} ~{c.get('update', 0):,} -{c.get('delete', 0):,}  " if c else "")
            + f"{e['result']}{took}  by {e['actor']}"
        )
        if e.get("message"):
            out.append(f"          {e['message']}")
    return "\n".join(out)


def render_unreadable_history(name: str, unreadable: list[dict[str, str]]) -> str:
    """The history documents `history` skipped (reported on stderr, never fatal)."""
    n = len(unreadable)
    lines = [f"Warning: skipped {n} unreadable history entr{'y' if n == 1 else 'ies'} of {name}:"]
    lines.extend(f"  {item['key']}: {item['problem']}" for item in unreadable)
    return "\n".join(lines)


# -- apply results ---------------------------------------------------------------------------


def render_validation(result: dict[str, Any]) -> str:
    """A canary verdict: pass rate against the minimum, then each failed query."""
    ok = bool(result["ok"])
    mark = "[green]✓[/]" if ok else "[red]✗[/]"
    verdict = "passed" if ok else "[red]FAILED[/]"
    headline = (
        f"{mark} validation {verdict}: {result['passed']}/{result['total']} canary queries passed "
        f"({_pct(result['pass_rate'])}, minimum {_pct(result['min_pass_rate'])})"
    )
    lines = [headline]
    for f in result.get("failures", []):
        lines.append(f"  [red]✗[/] {escape(str(f['name']))}")
        lines.append(f"      expected: {escape(', '.join(f['expected']))}")
        lines.append(f"      missing:  {escape(', '.join(f['missing']))}")
        lines.append(f"      returned: {escape(', '.join(f['returned'])) or '(nothing)'}")
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%".replace(".0%", "%")


def result_line(result: dict[str, Any], operation: str) -> str:
    """One environment's outcome after apply (or rollback); a failure's line goes to stderr."""
    name, status = result["name"], result["status"]
    if status == "applied":
        c = result["counts"]
        verb = "rolled back to" if operation == "rollback" else "applied"
        line = f"[green]✓[/] {name}: {verb} {result['version']}: +{c['add']:,} ~{c['update']:,} -{c['delete']:,} in {result['duration_s']:.1f}s"
        # e.g. a blue/green switch: which slot went live
        return f"{line}\n  {result['message']}" if result.get("message") else line
    if status == "unchanged":
        return f"[green]✓[/] {name}: already at {result['version']}; nothing to do"
    return f"[red]✗[/] {name}: {status}: {result['message']}"


def destination_warnings(warnings: list[dict[str, Any]]) -> str:
    """What destinations warned about during the command (``DestinationWarning.to_json``), one line
    each, in the style of a plan's warnings: e.g. an index build that outgrew its memory."""
    return "\n".join(
        f"[yellow]warning[/]   {escape(printable(w['destination']))}: {escape(printable(w['message']))}" for w in warnings
    )


def not_attempted_line(names: list[str]) -> str:
    return f"Not attempted after the failure: {', '.join(names)}"


# -- drift and import ----------------------------------------------------------------------------


def render_drift(report: dict[str, Any], width: int = WIDTH) -> str:
    """`vectorops drift` (its plan-shaped JSON): per environment, what differs from the deployed version."""
    lines: list[str] = []
    for r in report["environments"]:
        lines.append(f"[bold]{r['name']}[/]  {r['destination']}  deployed {r['deployed']['version']} ({r['deployed']['commit'][:7]})")
        lines.append(f"  drift  {drift_line(r['drift'])}")
        for k, ids in r["samples"].items():
            if ids and r["drift"].get(k):
                lines.append(f"         {k}:")
                lines.extend(id_lines(ids, r["drift"][k], width, indent=" " * 11))
    return "\n".join(lines)


def render_import(report: dict[str, Any], width: int = WIDTH) -> str:
    """`vectorops import`: the index against the version it would be recorded at."""
    lines = [f"[bold]{report['environment']}[/]  {report['destination']}", f"  adopt as  {report['version']['version']} ({report['version']['commit'][:7]})"]
    previous = report.get("previous")
    if previous:
        lines.append(f"  [yellow]replaces the recorded deployment {previous['version']} ({previous['commit'][:7]})[/]")
    lines.append(f"  differs   {drift_line(report['drift'])}")
    for key, ids in report["samples"].items():
        if ids and report["drift"].get(key):
            lines.append(f"            {key}:")
            lines.extend(id_lines(ids, report["drift"][key], width, indent=" " * 14))
    return "\n".join(lines)


def versions_table(rows: list[dict[str, Any]]) -> Any:
    """`vectorops versions`: a rich table (commit, date, tags, digest, records)."""
    from rich.table import Table

    table = Table("commit", "date", "tags", "digest", "records", box=None, pad_edge=False)
    for r in rows:
        table.add_row(r["commit"][:7], r["date"], ", ".join(r["tags"]), r["digest"][:12], "" if r["records"] is None else f"{r['records']:,}")
    return table


# -- one-line outcomes -----------------------------------------------------------------------------


def render_validate(manifest_name: str, datasets: int, environments: list[dict[str, Any]]) -> str:
    """`vectorops validate`: the manifest is valid, then each environment's pinned version (and canaries)."""
    lines = [f"[green]✓[/] {manifest_name} is valid: {plural(datasets, 'dataset')}, {plural(len(environments), 'environment')}"]
    body = []
    for e in environments:
        body.append(f"  {e['name']}: {e['dataset']} @ {e['version']} ({e['commit'][:7]}, digest {e['digest'][:12]})")
        if e.get("canaries") is not None:
            body.append(f"    canaries: {e['canaries']['file']}: {plural(e['canaries']['queries'], 'query', 'queries')} OK")
    lines.append("\n".join(body))
    return "\n".join(lines)


def saved_plan_line(path: str) -> str:
    return f"\nSaved the plan to {path}. Apply exactly this plan with: vectorops apply {path}"


def promoted_line(dst: str, version: str) -> str:
    return f"\nPinned {dst} to {version}. Review and commit: git commit -am 'promote {version} to {dst}'"


def imported_line(name: str, version: str) -> str:
    return f"[green]✓[/] {name}: recorded as deployed at {version}. `vectorops plan {name}` now shows the remaining drift."


def exported_lines(name: str, records: int, path: str) -> str:
    from pathlib import Path

    return (
        f"[green]✓[/] wrote {records:,} records from {name} to {path}. Track it as a dataset version with:\n"
        f"  dvc add {path} && git add {path}.dvc {Path(path).parent / '.gitignore'} && git commit -m 'dataset from {name}' && dvc push"
    )
