"""`vectorops promote SRC DST`: move DST's pin in the manifest to the version SRC runs.

The manifest is reviewed in pull requests, so promotion must change exactly one value and nothing
else: not a comment, not the key order, not the quoting, not the indentation of a list. Dumping a
whole document, even through a round-trip YAML library, can still re-indent sequences or re-wrap
long lines. So the YAML composer (PyYAML's, the parser that reads the manifest) locates the scalar
(its exact start and end in the text, and its quoting style), only those characters are replaced,
and the result is parsed again to prove that the one value changed and everything else reads the
same, as the manifest loader will read it (YAML 1.1: a plain ``yes`` or ``1.0`` is not a string,
so such a version is written quoted).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from yaml import MappingNode, Node, ScalarNode, YAMLError

from reconciler.errors import ManifestError, UsageError

__all__ = ["promote"]

_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./+@-]*")


def promote(manifest_path: Path, src_env: str, dst_env: str, version: str) -> str:
    """Set ``environments.<dst_env>.version`` to ``version``, write the file, return a unified diff.

    ``version`` is SRC's deployed version (the caller checks it is validated there). The diff is
    empty, and the file untouched, when DST already pins that version.
    """
    path = Path(manifest_path)
    shown = _shown(path)
    if src_env == dst_env:
        raise UsageError(f"promote: SRC and DST are both '{src_env}'", hint="Name two different environments: vectorops promote SRC DST.")
    if not version:
        raise UsageError("promote: the version to promote is empty")
    try:
        with open(path, encoding="utf-8", newline="") as fh:  # newline="": keep CRLF files CRLF
            text = fh.read()
    except FileNotFoundError:
        raise ManifestError(f"{shown}: no such manifest", hint="Pass the manifest with -m/--manifest PATH.") from None
    root = _compose(text, shown)
    envs = _child(root, "environments")
    if not isinstance(envs, MappingNode):
        raise ManifestError(f"{_at(shown, root)}: the manifest has no 'environments' mapping", hint="See the README for the manifest format.")
    defined = [str(k.value) for k, _ in envs.value]
    src = _child(envs, src_env)
    dst = _child(envs, dst_env)
    for name, node in ((src_env, src), (dst_env, dst)):
        if not isinstance(node, MappingNode):
            raise ManifestError(
                f"{_at(shown, envs)}: environment '{name}' is not defined in {shown}",
                hint=f"Environments defined: {', '.join(defined) or '(none)'}.",
            )
    assert isinstance(src, MappingNode) and isinstance(dst, MappingNode)
    src_ds, dst_ds = _child(src, "dataset"), _child(dst, "dataset")
    if isinstance(src_ds, ScalarNode) and isinstance(dst_ds, ScalarNode) and src_ds.value != dst_ds.value:
        raise ManifestError(
            f"{_at(shown, dst_ds)}: cannot promote '{src_env}' (dataset '{src_ds.value}') to '{dst_env}' (dataset '{dst_ds.value}')",
            hint="Promote between environments of the same dataset.",
        )
    node = _child(dst, "version")
    if node is None:
        raise ManifestError(
            f"{_at(shown, dst)}: environment '{dst_env}' has no 'version' key to rewrite",
            hint=f"Add 'version: {version}' under environments.{dst_env}.",
        )
    if not isinstance(node, ScalarNode) or node.style in ("|", ">"):
        raise ManifestError(
            f"{_at(shown, node)}: environments.{dst_env}.version is not a one-line value",
            hint="Write it as 'version: <rev>' on one line, then promote again.",
        )
    if node.value == version:
        return ""
    new_text = text[: node.start_mark.index] + _render(version, node.style) + text[node.end_mark.index :]
    _verify(text, new_text, dst_env, version, shown)
    _write(path, new_text)
    return "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True), new_text.splitlines(keepends=True), fromfile=f"a/{shown}", tofile=f"b/{shown}"
        )
    )


def _shown(path: Path) -> str:
    return path.as_posix() if not path.is_absolute() else path.name


def _compose(text: str, shown: str) -> Node:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # the pure-Python loader: its marks carry text offsets
    except YAMLError as exc:
        raise ManifestError(f"{shown}: invalid YAML: {exc}", hint="Fix the YAML syntax, then promote again.") from None
    if not isinstance(root, MappingNode):
        raise ManifestError(f"{shown}:1:1: the manifest must be a mapping", hint="See the README for the manifest format.")
    return root


def _child(node: Node | None, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return v
    return None


def _at(shown: str, node: Node) -> str:
    return f"{shown}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _render(version: str, style: str | None) -> str:
    """The new scalar in the old one's quoting; a plain value that YAML would misread gets quoted."""
    if style == "'":
        return "'" + version.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(version, ensure_ascii=False)
    if _PLAIN_SAFE.fullmatch(version) and _reads_as_string(version):
        return version
    return json.dumps(version, ensure_ascii=False)  # e.g. 1.0, 2024, yes, null: quote to keep a string


def _reads_as_string(value: str) -> bool:
    try:
        loaded = yaml.safe_load(f"k: {value}\n")
    except YAMLError:
        return False
    return isinstance(loaded, dict) and loaded.get("k") == value


def _load(text: str) -> Any:
    return yaml.safe_load(text)


def _verify(old: str, new: str, dst_env: str, version: str, shown: str) -> None:
    """Prove the edit changed exactly environments.<dst>.version and nothing else."""
    try:
        before, after = _load(old), _load(new)
    except YAMLError as exc:  # pragma: no cover - _render keeps the document valid
        raise ManifestError(f"{shown}: rewriting the version would break the YAML ({exc})", hint="Edit the version by hand.") from None
    before["environments"][dst_env]["version"] = version
    if before != after:  # pragma: no cover - a guard against an unforeseen layout
        raise ManifestError(
            f"{shown}: could not rewrite environments.{dst_env}.version without changing anything else",
            hint=f"Set it to {version} by hand.",
        )


def _write(path: Path, text: str) -> None:
    """Atomic replace in the same folder, keeping the file's permissions."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

