"""Human output, rendered from the same JSON as `--json` so the two can never disagree.

Functions return text; the CLI decides where it goes. Colour is rich markup, stripped by the
console when colour is off or stdout is not a terminal.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from reconciler.redact import printable


def _short(ref: dict[str, Any] | None) -> str:
    if not ref:
        return "(nothing deployed)"
    return f"{ref['version']} ({ref['commit'][:7]})"


def _ids(ids: list[str], total: int) -> str:
    if not ids:
        return ""
    more = total - len(ids)
    shown = ", ".join(escape(printable(i)) for i in ids)  # ids come from data: no markup, no line breaks
    return "  " + shown + (f", … {more} more" if more > 0 else "")


def drift_line(drift: dict[str, Any]) -> str:
    level = drift.get("level")
    if level == "none":
        return "not checked (--refresh none)"
    parts = []
    for key in ("missing", "unexpected", "modified"):
        value = drift.get(key)
        if value:
            parts.append(f"{value} {key}")
    found = drift.get("actual_count")
    expected = drift.get("expected_count")
    if not parts:
        return f"none (refresh: {level}; {found} records, {expected} expected)"
    return f"[yellow]{', '.join(parts)}[/] (refresh: {level}; {found} records, {expected} expected)"


def render_environment(env: dict[str, Any]) -> list[str]:
    c = env["changes"]
    s = env.get("samples", {})
    lines = [f"[bold]{env['name']}[/]  {env['destination']}  (dataset {env['dataset']})"]
    cur, des = env.get("current"), env["desired"]
    if cur and cur.get("commit") == des["commit"] and cur.get("version") == des["version"]:
        lines.append(f"  version   {_short(des)}  (deployed)")
    else:
        lines.append(f"  version   {_short(cur)} → [bold]{_short(des)}[/]")
    if env.get("interrupted"):
        i = env["interrupted"]
        lines.append(
            f"  [red]interrupted[/] apply of {i['version']} ({i['commit'][:7]}) by {i['actor']} at {i['started_at']}: "
            f"{i['done']} of {i['total']} changes recorded as written; this apply finishes it"
        )
    detail = env.get("update_detail") or {}
    upd_note = f" ({detail.get('vector', 0)} vector, {detail.get('metadata', 0)} metadata-only)" if c["update"] else ""
    lines.append(f"  [green]+ {c['add']:>7} to add[/]{_ids(s.get('add', []), c['add'])}")
    lines.append(f"  [yellow]~ {c['update']:>7} to update[/]{upd_note}{_ids(s.get('update', []), c['update'])}")
    lines.append(f"  [red]- {c['delete']:>7} to delete[/]{_ids(s.get('delete', []), c['delete'])}")
    lines.append(f"  drift     {drift_line(env['drift'])}")
    for key in ("missing", "unexpected", "modified"):
        if s.get(key) and env["drift"].get(key):
            lines.append(f"            {key}:{_ids(s[key], env['drift'][key])}")
    for w in env.get("warnings", []):
        lines.append(f"  [yellow]warning[/]   {w}")
    if env.get("blocked"):
        lines.append(f"  [bold red]blocked[/]   {env['blocked']}")
    return lines


def summary_line(plan: dict[str, Any]) -> str:
    envs = plan["environments"]
    add = sum(e["changes"]["add"] for e in envs)
    upd = sum(e["changes"]["update"] for e in envs)
    dele = sum(e["changes"]["delete"] for e in envs)
    blocked = [e["name"] for e in envs if e.get("blocked")]
    moving = [e for e in envs if _moves(e) or any(e["changes"].values())]
    if not moving:
        text = f"No changes. {len(envs)} environment(s) match their pinned versions."
    else:
        text = f"Plan: {add} to add, {upd} to update, {dele} to delete in {len(moving)} of {len(envs)} environment(s)."
    drifted = [e["name"] for e in envs if any((e.get("drift") or {}).get(k) for k in ("missing", "unexpected", "modified"))]
    if drifted:
        text += f" Drift found in {', '.join(drifted)}."
    if blocked:
        text += f" Blocked: {', '.join(blocked)}."
    return text


def _moves(env: dict[str, Any]) -> bool:
    cur = env.get("current")
    return cur is None or any(cur.get(k) != env["desired"].get(k) for k in ("version", "commit", "digest"))


def render_plan(plan: dict[str, Any]) -> str:
    out: list[str] = []
    for env in plan["environments"]:
        out.extend(render_environment(env))
        out.append("")
    out.append(f"[bold]{summary_line(plan)}[/]")
    return "\n".join(out)


def render_status(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        colour = {"Synced": "green", "OutOfSync": "yellow", "Drifted": "red"}.get(r["status"], "white")
        out.append(f"[bold]{r['name']}[/]  [{colour}]{r['status']}[/]  {r['destination']}")
        out.append(f"  deployed  {_short(r.get('deployed'))}" + ("" if r.get("validated") is None else f"  validated: {r['validated']}"))
        out.append(f"  desired   {_short(r.get('desired'))}")
        if r.get("last_apply"):
            la = r["last_apply"]
            out.append(f"  last      {la['finished_at']} by {la['actor']}: {la['operation']} → {la['to']['version']} ({la['result']})")
        if r.get("lock"):
            out.append(f"  [red]locked[/]    {r['lock']}")
        if r.get("interrupted"):
            out.append(f"  [red]interrupted[/] apply of {r['interrupted']['version']}: run `vectorops apply` to finish it")
    return "\n".join(out)


def render_history(name: str, entries: list[dict[str, Any]]) -> str:
    if not entries:
        return f"{name}: no applies recorded yet."
    out = [f"[bold]{name}[/]: {len(entries)} appl{'y' if len(entries) == 1 else 'ies'} (newest first)"]
    for e in entries:
        frm = e["from"]["version"] if e.get("from") else "∅"
        c = e["counts"]
        out.append(
            f"  #{e['serial']:<4} {e['finished_at']}  {e['operation']:<8} {frm} → {e['to']['version']} ({e['to']['commit'][:7]})  "
            f"+{c.get('add', 0)} ~{c.get('update', 0)} -{c.get('delete', 0)}  {e['result']}  {e['duration_s']:.1f}s  by {e['actor']}"
        )
    return "\n".join(out)
