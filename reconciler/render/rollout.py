"""Text for blue/green rollouts (SPEC §9): the live slot and what every slot holds, and what an
apply will do to them. Rendered from the ``rollout`` section of ``plan --json`` and
``status --json``, so the human text, the PR comment and the JSON can never disagree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: what an apply does, by the plan's ``rollout.action``
_ACTIONS = {
    "write": "writes slot {target} ({slot_from}), runs the canaries there, then switches the alias to it",
    "switch": "switches the alias to slot {target}, which already holds this version: no records written",
    "record": "records the switch to slot {target} that an interrupted apply made (readers already see it)",
    "none": "nothing to do: the alias points at slot {target}, which holds this version",
}


def _slot_from(rollout: Mapping[str, Any]) -> str:
    cur = rollout.get("slot_current")
    if isinstance(cur, Mapping) and cur.get("version"):
        return f"a diff from its own {cur['version']}"
    return "filled whole: a fresh slot"


def _verdict(slot: Mapping[str, Any]) -> str:
    verdicts: dict[bool | None, str] = {True: ", canaries passed", False: ", canaries failed"}
    return verdicts.get(slot.get("validated"), "")


def slot_summary(rollout: Mapping[str, Any]) -> str:
    """``blue v1, green v2 (live), amber v3 (canaries failed)``."""
    parts = []
    for s in rollout.get("slots") or []:
        live = " (live" + _verdict(s) + ")" if s.get("live") else (f" ({_verdict(s)[2:]})" if _verdict(s) else "")
        parts.append(f"{s.get('name')} {s.get('version')}{live}")
    return ", ".join(parts) or "none yet"


def action_sentence(rollout: Mapping[str, Any]) -> str:
    template = _ACTIONS.get(str(rollout.get("action")), "")
    return template.format(target=rollout.get("target"), slot_from=_slot_from(rollout))


def rollout_lines(rollout: Mapping[str, Any] | None, *, planned: bool) -> list[str]:
    """Human lines for ``plan`` (``planned``: with what the apply does) and ``status``."""
    if not rollout or rollout.get("strategy") != "blue_green":
        return []
    live = rollout.get("live") or "nothing (no alias yet)"
    lines = [f"  rollout   blue/green (keep {rollout.get('keep')}): alias on {live}; slots: {slot_summary(rollout)}"]
    if planned:
        lines.append(f"            this apply {action_sentence(rollout)}")
    return lines
