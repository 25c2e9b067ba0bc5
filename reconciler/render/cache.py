"""Text for `vectorops cache info` and `vectorops cache prune` (from ``engine.cache_pruning``'s JSON)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from reconciler.render.human import plural

#: at most this many versions are listed by name
SHOWN = 10


def size_text(n: int) -> str:
    """Bytes as people read a cache's size: 0 B, 812 kB, 1.6 GB (powers of 1000, like `du --si`)."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 10 * scale else f"{n / scale:.0f} {unit}"
    return f"{n} B"


def render_cache_info(info: dict[str, Any]) -> str:
    lines = [f"Hash cache at {escape(info['folder'])}: {size_text(info['bytes'])} in {plural(info['entries'], 'entry', 'entries')}."]
    if not info["entries"]:
        return lines[0] + "\nNothing cached yet: a plan fills it."
    lines += [f"  {k['what']:<24} {size_text(k['bytes']):>9}  {plural(k['entries'], 'entry', 'entries')}" for k in info["kinds"].values()]
    versions = info["versions"]
    if versions:
        lines.append("")
        lines.append(f"Versions plans used, most recent first ({len(versions)}; a shard shared by two versions counts in both):")
        lines += [f"  {escape(v['label']):<32} last used {v['last_used']}  {size_text(v['bytes']):>9}" for v in versions[:SHOWN]]
        if len(versions) > SHOWN:
            lines.append(f"  … and {len(versions) - SHOWN} older")
    lines.append("")
    lines.append("Free space with: vectorops cache prune --max-size 2GB (least recently used versions go first) or --older-than 30d.")
    return "\n".join(lines)


def render_prune(result: dict[str, Any]) -> str:
    removed, kept = result["removed"], result["kept"]
    verb = "Would remove" if result["dry_run"] else "Removed"
    lines = [(
        f"{verb} {plural(removed['entries'], 'entry', 'entries')} ({size_text(removed['bytes'])}) from the hash cache at "
        f"{escape(result['folder'])}; kept {plural(kept['entries'], 'entry', 'entries')} ({size_text(kept['bytes'])})."
    )]
    if removed["versions"]:
        lines.append(f"  versions {'to drop' if result['dry_run'] else 'dropped'}: {_labels(removed['versions'])} (a plan of them hashes their shards again)")
    if kept["versions"]:
        lines.append(f"  versions kept: {_labels(kept['versions'])}")
    if result.get("in_use"):
        lines.append(f"  kept because a running plan reads them: {_labels(result['in_use'])}")
    if result["over_budget"]:
        lines.append(
            "[yellow]Note:[/] what was used within --keep-recent (or a running plan reads) alone is above --max-size; "
            "it was kept. Raise --max-size, or prune again once those plans are done."
        )
    lines += [f"[red]Could not remove[/] {escape(failure)}" for failure in result["failed"]]
    return "\n".join(lines)


def _labels(versions: list[str]) -> str:
    """Version labels for one line: the first ``SHOWN``, then an ellipsis."""
    return ", ".join(escape(v) for v in versions[:SHOWN]) + (" …" if len(versions) > SHOWN else "")
