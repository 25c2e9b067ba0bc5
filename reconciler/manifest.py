"""The manifest (`vectorops.yaml`): models, loading with positions, and meaning checks.

Every error names ``file:line:column`` because a manifest is edited by hand in a PR, and "field
required" without a place costs a reviewer minutes. YAML is composed to nodes first so each value
keeps its mark; pydantic then validates, and its error locations are mapped back to those marks.
"""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

from reconciler.errors import ManifestError, VectorOpsError
from reconciler.providers import registry
from reconciler.providers.settings import DestinationContext, DestinationSettings
from reconciler.redact import has_control, is_control, printable

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]
Metric = Literal["cosine", "dotproduct", "euclidean"]


class _Model(BaseModel):
    # strict: YAML already gives typed values, so `dimension: true` or `dimension: "16"` is a mistake
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Embedding(_Model):
    """What produced the vectors; recorded in state so another model is never mixed in."""

    model: str = Field(min_length=1, description="Name of the embedding model, e.g. sentence-transformers/all-MiniLM-L6-v2")
    dimension: int = Field(gt=0, le=65536, description="Vector length")
    metric: Metric = Field("cosine", description="Similarity metric of the index")


class Dataset(_Model):
    path: str = Field(min_length=1, description="DVC-tracked file (a .dvc file or a dvc.yaml output), relative to the repo root")
    repo: str | None = Field(None, description="Local path (relative to the manifest) or git URL; default: the git repo holding the manifest")
    format: Literal["parquet", "jsonl"] = "parquet"
    id_field: str = Field("id", min_length=1)
    vector_field: str = Field("vector", min_length=1)
    metadata_fields: list[str] | None = Field(None, description="Metadata columns; default: every other column")
    embedding: Embedding


def destination_union(types: tuple[type[DestinationSettings], ...]) -> Any:
    """``destination:`` as a union of the given types' settings models, told apart by ``type``."""
    return Annotated[Union[types], Field(discriminator="type")]  # noqa: UP007 - Union[tuple] unpacks a runtime tuple; `X | Y` cannot


#: the built-in types (the JSON Schema's); a manifest naming a plug-in's type validates against
#: models that add it (``_models_for``)
if TYPE_CHECKING:  # what every member of the union is
    Destination = DestinationSettings
else:
    Destination = destination_union(registry.builtin_types())


class Validation(_Model):
    canaries: str = Field(min_length=1, description="Canary query file, relative to the manifest's folder")
    min_pass_rate: float = Field(1.0, ge=0.0, le=1.0)


class Policy(_Model):
    prune: bool = Field(True, description="Delete records that are not in the dataset")
    max_delete_fraction: float = Field(0.10, ge=0.0, le=1.0, description="Refuse plans deleting more than this share unless --allow-deletes")
    allow_empty: bool = Field(False, description="Deploy a dataset version with 0 records (refused by default: it is almost always a broken pipeline)")
    refresh: Literal["none", "stats", "sample", "ids", "full"] | None = Field(
        None,
        description="How closely plan reads this environment's destination when --refresh is not given (default ids; "
        "sample: a count check plus a fixed-size random sample, for large indexes)",
    )


class Sync(_Model):
    """How `vectorops reconcile` treats the environment (SPEC §11); `plan`/`apply` ignore it."""

    auto: bool = Field(False, description="The reconcile agent applies this environment when its pin (or the branch's commit) moves; otherwise it only plans it and reports OutOfSync")
    self_heal: bool = Field(
        False, description="With auto: the agent also repairs drift found while the pin stays put (records changed behind its back); otherwise drift is only reported"
    )


class Rollout(_Model):
    """How a new version reaches readers (SPEC §9)."""

    strategy: Literal["in_place", "blue_green"] = Field(
        "in_place",
        description="in_place: write the diff into the index readers use. blue_green: build the version in an inactive "
        "slot, run the canaries there, then repoint the alias readers use in one atomic step",
    )
    keep: int = Field(2, ge=2, le=10, description="blue_green: how many slots exist; older ones are deleted after a switch")


class Environment(_Model):
    dataset: Name
    version: str = Field(min_length=1, description="The pin: a git rev (tag, branch or commit) of the dataset's repo")
    destination: Destination
    validation: Validation | None = None
    requires: list[Name] = Field(default_factory=list, description="Environments that must have this version applied and validated first")
    policy: Policy = Field(default_factory=Policy)
    rollback_on_failure: bool = Field(False, description="Roll back automatically when validation fails")
    sync: Sync = Field(default_factory=Sync, description="What the reconcile agent (`vectorops reconcile`) may do on its own")
    rollout: Rollout = Field(default_factory=Rollout, description="in_place (default) or blue_green through an alias (SPEC §9)")


class Executor(_Model):
    """Where a plan's heavy work runs (SPEC §10): shard hashing, the diff, apply's record reads."""

    type: Literal["local", "ray"] = Field("local", description="local: processes on this machine (--jobs). ray: tasks on a Ray cluster (the vectorops[ray] extra)")
    address: str | None = Field(
        None, min_length=1,
        description="ray: the cluster to join: auto (RAY_ADDRESS, else a cluster started on this machine), host:port, "
        "ray://host:port, or local (start Ray on this machine for the command); default: RAY_ADDRESS, else auto",
    )


class Manifest(_Model):
    version: Literal[1] = Field(description="Manifest format version")
    datasets: dict[Name, Dataset] = Field(min_length=1)
    environments: dict[Name, Environment] = Field(min_length=1)
    executor: Executor | None = Field(None, description="Where shard hashing and the diff run; --executor overrides it (default: local)")


@cache
def _models_for(types: tuple[type[DestinationSettings], ...]) -> type[Manifest]:
    """The manifest model whose ``destination:`` accepts exactly ``types`` (built-ins + plug-ins)."""
    if types == registry.builtin_types():
        return Manifest
    environment = create_model("Environment", __base__=Environment, destination=(destination_union(types), ...))
    return create_model(
        "Manifest", __base__=Manifest, environments=(dict[Name, environment], Field(min_length=1))
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use for completion; committed as schemas/vectorops.schema.json.

    Built from the built-in destination types only, so the committed file does not depend on
    which plug-ins the generating machine has installed."""
    schema = _names_as_property_names(Manifest.model_json_schema())
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/vectorops/vectorops/schemas/vectorops.schema.json",
        "title": "vectorops manifest (vectorops.yaml)",
        **schema,
    }


def schema_text() -> str:
    """``json_schema()`` exactly as committed: sorted keys, 2-space indent, trailing newline.

    One function so the generator and the in-sync test cannot disagree about formatting.
    """
    import json

    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _names_as_property_names(node: Any) -> Any:
    """pydantic renders ``dict[Name, X]`` as ``patternProperties``, which lets a badly named key
    through unchecked; ``propertyNames`` + ``additionalProperties`` rejects it, as the loader does."""
    if isinstance(node, list):
        return [_names_as_property_names(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _names_as_property_names(v) for k, v in node.items()}
    patterns = out.get("patternProperties")
    if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in out:
        ((pattern, value),) = patterns.items()
        del out["patternProperties"]
        out["propertyNames"] = {**out.get("propertyNames", {}), "pattern": pattern}
        out["additionalProperties"] = value
    return out


# -- loading with positions -------------------------------------------------------------------

Path_ = tuple[Any, ...]


@dataclass
class Positions:
    """Maps a value's path in the document to its (line, column), both 1-based."""

    file: str
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: Path_, *, key: bool = False) -> str:
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                line, col = table[p]
                return f"{self.file}:{line}:{col}"
            if p in self.values:
                line, col = self.values[p]
                return f"{self.file}:{line}:{col}"
            p = p[:-1]
        line, col = self.values.get((), (1, 1))
        return f"{self.file}:{line}:{col}"


#: Bounds on every YAML file vectorops reads from a repository (the manifest, canary files): a pull
#: request can change them, and unbounded YAML is a denial of service (a 569-byte "billion laughs"
#: file expands to gigabytes; 50,000 nested ``[`` exhaust the interpreter's stack).
MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_DEPTH = 64  # nesting of mappings and lists; a manifest needs 6
MAX_YAML_NODES = 250_000  # values after aliases are expanded; ~130 canary queries with explicit 768-d vectors


def _where(file: str, mark: Any) -> str:
    return f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else f"{file}:1:1"


def read_bounded_text(path: Path, shown: str, error: type[VectorOpsError] = ManifestError) -> str:
    """A YAML file's text, refused (unread) when it is larger than ``MAX_YAML_BYTES``."""
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise error(
            f"{shown}:1:1: the file is {size:,} bytes; vectorops reads YAML files of at most {MAX_YAML_BYTES:,} bytes",
            hint="A manifest or canary file is a few kilobytes; check that the path names the right file.",
        )
    with open(path, "rb") as f:
        data = f.read(MAX_YAML_BYTES + 1)  # the file may have grown since stat
    if len(data) > MAX_YAML_BYTES:
        raise error(f"{shown}:1:1: the file is larger than {MAX_YAML_BYTES:,} bytes", hint="Check that the path names the right file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})", hint="Save the file as UTF-8.") from None


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's composer, refusing nesting deeper than ``MAX_YAML_DEPTH`` as it reads (it recurses)."""

    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self._file = file
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_YAML_DEPTH:
            raise ManifestError(
                f"{_where(self._file, self.peek_event().start_mark)}: nesting deeper than {MAX_YAML_DEPTH} levels",
                hint="Lists and mappings nest a few levels in a manifest or canary file; check for stray '[' or '{'.",
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass
class _Budget:
    """Values constructed so far: aliases count every time they are expanded."""

    file: str
    nodes: int = 0

    def spend(self, node: yaml.Node, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            raise ManifestError(
                f"{_where(self.file, node.start_mark)}: more than {MAX_YAML_NODES:,} values once aliases (*name) are expanded",
                hint="Use fewer or smaller aliases; YAML anchors that expand to huge documents are refused.",
            )
        if depth > MAX_YAML_DEPTH:  # an alias to its own parent (&a [*a]) nests forever
            raise ManifestError(
                f"{_where(self.file, node.start_mark)}: nesting deeper than {MAX_YAML_DEPTH} levels (an alias that contains itself?)",
                hint="Remove the alias that refers to a mapping or list it is part of.",
            )


def _construct(node: yaml.Node, path: Path_, pos: Positions, budget: _Budget, echo: bool = True) -> Any:
    budget.spend(node, len(path))
    pos.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(key_node, path + ("<key>",), pos, budget, echo)
            if key is None or isinstance(key, (dict, list)):
                raise ManifestError(
                    f"{pos.at(path + ('<key>',))}: a mapping key must be a plain name",
                    hint="Write 'name: value'; a key cannot be empty, null, a list or a mapping.",
                )
            if key in out:
                where = f"{pos.file}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}"
                shown = f" '{key}'" if echo else ""
                raise ManifestError(f"{where}: duplicate key{shown}", hint="Each key may appear once; remove or merge the repeated one.")
            pos.keys[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _construct(value_node, path + (key,), pos, budget, echo)
        pos.values.pop(path + ("<key>",), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), pos, budget, echo) for i, item in enumerate(node.value)]
    value = yaml.SafeLoader.construct_object(_SCALAR_LOADER, node, deep=True)
    if isinstance(value, str) and has_control(value, allow="\t"):
        bad = next(ch for ch in value if is_control(ch) and ch != "\t")
        raise ManifestError(
            f"{_where(pos.file, node.start_mark)}: a control character (U+{ord(bad):04X}) in a value",
            hint="Names, revs, paths and ids are single-line text: remove line breaks, escape sequences and other "
            "control characters (they could forge lines in CI logs).",
        )
    return value


class _ScalarLoader(yaml.SafeLoader):
    def __init__(self) -> None:  # only its scalar constructors are used
        super().__init__("")


_SCALAR_LOADER = _ScalarLoader()


def parse_yaml_with_positions(text: str, file: str, *, echo: bool = True) -> tuple[Any, Positions]:
    """Compose and construct YAML within the bounds above, keeping every value's position.

    ``echo=False`` (a canary file: its path could name any file) keeps the file's own text out of
    messages: a syntax error or a duplicate key is named by its place and kind only.
    """
    pos = Positions(file=file)
    if len(text) > MAX_YAML_BYTES:
        raise ManifestError(f"{file}:1:1: the file is larger than {MAX_YAML_BYTES:,} bytes", hint="Check that the path names the right file.")
    try:
        loader = _BoundedLoader(text, file)  # the reader refuses control characters as it is built
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        where = f"{file}:{before.count(chr(10)) + 1}:{exc.position - (before.rfind(chr(10)) + 1) + 1}"
        character = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        raise ManifestError(
            f"{where}: invalid YAML: the control character U+{character:04X} is not allowed in YAML",
            hint="Remove it; YAML files hold printable text only.",
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ManifestError(
                f"{file}:1:1: the manifest is empty", hint="Start from the example in the README (version: 1, datasets:, environments:)."
            )
        # constructing values can fail too: a tag such as !!python/object is refused by the safe loader
        return _construct(node, (), pos, _Budget(file), echo), pos
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        problem = str(exc.problem or "not valid YAML")
        if not echo:  # PyYAML quotes the text it stumbled on ("found undefined alias 'x'")
            problem = re.sub(r"'[^']*'|\"[^\"]*\"", "(…)", problem)
        raise ManifestError(f"{where}: invalid YAML: {printable(problem)}", hint="Fix the YAML syntax at that position.") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{file}: invalid YAML{': ' + printable(str(exc)) if echo else ''}") from None
    finally:
        loader.dispose()


_HINTS = {
    "extra_forbidden": "Remove it or check its spelling; the manifest reference lists every key.",
    "missing": "Add it.",
    "literal_error": "Use one of the values listed.",
    "string_type": 'Write it as text; quote values YAML reads as numbers or booleans (e.g. "2024", "1.0", "yes").',
    "string_too_short": "It must not be empty.",
    "string_too_long": "Shorten it.",
    "int_type": "Give a whole number.",
    "int_parsing": "Give a whole number.",
    "int_from_float": "Give a whole number.",
    "float_type": "Give a number.",
    "float_parsing": "Give a number.",
    "bool_type": "Use true or false.",
    "bool_parsing": "Use true or false.",
    "dict_type": "Write it as a mapping: indented 'key: value' lines.",
    "model_type": "Write it as a mapping: indented 'key: value' lines.",
    "list_type": "Write it as a list, e.g. [a, b].",
    "too_short": "Give at least one entry.",
    "greater_than": "Give a value in the allowed range.",
    "greater_than_equal": "Give a value in the allowed range.",
    "less_than": "Give a value in the allowed range.",
    "less_than_equal": "Give a value in the allowed range.",
}
_NAME_HINT = "Names use lowercase letters, digits, '-' and '_', starting with a letter or digit."
_FALLBACK_HINT = "See schemas/vectorops.schema.json for what is allowed here."


def _format_validation_error(exc: ValidationError, pos: Positions, types: tuple[type[DestinationSettings], ...]) -> ManifestError:
    tags = [t.type_name() for t in types]
    # a pasted key must never be echoed back; pattern hints say how each type's fields are spelled
    secret_fields = frozenset(f for t in types for f in t.secret_env_fields)
    pattern_hints = {f: h for t in types for f, h in t.pattern_hints.items()}
    hints_of_type = {t.type_name(): t.pattern_hints for t in types}
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        # the destination type the error is about: its own hints win over another type's same field
        tag = next((p for i, p in enumerate(loc) if p in tags and i > 0 and loc[i - 1] == "destination"), None)
        # pydantic inserts the union tag ("lancedb") into locations of tagged unions; drop it
        clean: list[Any] = []
        for i, part in enumerate(loc):
            if part in tags and i > 0 and loc[i - 1] == "destination":
                continue
            clean.append(part)
        path = tuple(clean)
        kind = err["type"]
        hint = _HINTS.get(kind, _FALLBACK_HINT)
        if kind == "union_tag_not_found":
            hint = "Add " + " or ".join(f"type: {t}" for t in tags) + "."
        elif kind == "union_tag_invalid":
            hint = registry.install_hint(str((err.get("ctx") or {}).get("tag", err.get("input"))))
        if path and path[-1] == "[key]":  # a mapping key itself is wrong (a bad name, a number, null)
            owner = path[:-1]
            where = pos.at(owner, key=True)
            parent = ".".join(str(p) for p in owner[:-1]) or "the top level"
            msg = f"invalid name {err.get('input')!r} in {parent}"
            hint = _NAME_HINT if parent in ("datasets", "environments") else hint
        elif kind == "extra_forbidden":
            where = pos.at(path, key=True)
            msg = f"unknown key '{path[-1]}' in {'.'.join(str(p) for p in path[:-1]) or 'the top level'}"
        elif kind in ("missing", "union_tag_not_found"):
            owner = path[:-1] if kind == "missing" else path
            key = path[-1] if kind == "missing" else "type"
            where = pos.at(owner)
            msg = f"missing required key '{key}' in {'.'.join(str(p) for p in owner) or 'the top level'}"
        else:
            where = pos.at(path)
            dotted = ".".join(str(p) for p in path) or "(top level)"
            msg = f"{dotted}: {err['msg']}"
            secret = bool(path) and path[-1] in secret_fields
            if "input" in err and not isinstance(err["input"], (dict, list)) and not secret:
                msg += f" (got {err['input']!r})"
            if secret and kind == "string_pattern_mismatch":
                msg = f"{dotted}: is not an environment variable name"
            if kind == "string_pattern_mismatch":
                field = str(path[-1]) if path else ""
                hint = hints_of_type.get(str(tag), {}).get(field) or pattern_hints.get(field, _NAME_HINT)
        lines.append(f"{where}: {msg}. {hint}")
    return ManifestError("invalid manifest:\n" + "\n".join(f"  {line}" for line in lines))


# -- the loaded manifest ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedManifest:
    """A validated manifest plus what is needed to act on it (paths resolved, positions kept)."""

    model: Manifest
    path: Path
    positions: Positions
    repo_root: Path | None  # the git repo holding the manifest, if any

    @property
    def folder(self) -> Path:
        return self.path.parent

    def destination_settings(self, env_name: str) -> DestinationSettings:
        """The environment's ``destination:`` (``providers.open_destination`` opens it)."""
        return self.model.environments[env_name].destination

    def where(self, *path: Any) -> str:
        return self.positions.at(path)

    def resolve_local(self, value: str) -> Path:
        """A path from the manifest, relative to the manifest's folder."""
        return DestinationContext(environment="", folder=self.folder).resolve(value)

    @property
    def boundary(self) -> Path:
        """Where files the manifest names may be: the git repo holding it, else its folder."""
        return (self.repo_root or self.folder).resolve()

    def outside_repository(self, target: Path) -> str | None:
        """Why ``target`` (symlinks resolved) may not be read, or None when it is inside ``boundary``.

        A pull request edits the manifest; a path that leaves the repository (``/etc/shadow``,
        ``../../secret.yaml``, a symlink to either) would make the Action read, and its messages
        publish, a file of the machine it runs on.
        """
        real = Path(os.path.realpath(target))
        if real == self.boundary or self.boundary in real.parents:
            return None
        where = "the git repository holding the manifest" if self.repo_root else "the manifest's folder (it is in no git repository)"
        return (
            f"canary file {printable(str(target))} is outside {where}, {self.boundary}"
            + (f" (it resolves to {printable(str(real))})" if real != target else "")
            + ". Canary files must be inside it: move the file into the repository and give its path relative to the manifest."
        )

    def environment_names(self, selected: tuple[str, ...] | list[str] = ()) -> list[str]:
        names = list(self.model.environments)
        unknown = [s for s in selected if s not in self.model.environments]
        if unknown:
            raise ManifestError(
                f"unknown environment{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)} in {self.path.name}",
                hint=f"Environments defined: {', '.join(names)}.",
            )
        return [n for n in names if n in selected] if selected else names

    def dataset_source(self, name: str):  # -> reconciler.dataset.DatasetSource
        from reconciler.dataset import DatasetSource

        ds = self.model.datasets[name]
        return DatasetSource(
            name=name,
            repo=self.dataset_repo(name),
            path=posixpath.normpath(ds.path),
            format=ds.format,
            id_field=ds.id_field,
            vector_field=ds.vector_field,
            metadata_fields=tuple(ds.metadata_fields) if ds.metadata_fields is not None else None,
            dimension=ds.embedding.dimension,
            origin=self.where("datasets", name),
        )

    def pinned_version(self, env_name: str, rev: str | None = None):  # -> reconciler.dataset.DatasetVersion
        """The environment's dataset at its pin (or ``rev``). A pin that names no rev is reported at
        the environment's ``version:`` line, naming the environment: that is the line to fix."""
        from reconciler import dataset as ds
        from reconciler.errors import DatasetError

        env = self.model.environments[env_name]
        src = self.dataset_source(env.dataset)
        try:
            return ds.resolve_version(src, rev or env.version)
        except ds.UnknownRevError as exc:
            if rev is not None and rev != env.version:
                raise
            raise DatasetError(
                f"{self.where('environments', env_name, 'version')}: environment '{env_name}' pins version '{env.version}', "
                f"which is not a git rev of dataset '{env.dataset}' (repo {src.repo})",
                hint=exc.hint,
            ) from None

    def dataset_repo(self, name: str) -> str:
        ds = self.model.datasets[name]
        if ds.repo is None:
            if self.repo_root is None:
                raise ManifestError(
                    f"{self.where('datasets', name)}: dataset '{name}' has no 'repo' and {self.path} is not inside a git repository",
                    hint="Commit the manifest to the git repo that tracks the data with DVC, or set 'repo:' to that repo's path or URL.",
                )
            return str(self.repo_root)
        if _looks_like_url(ds.repo):
            return ds.repo
        return str(self.resolve_local(ds.repo))


def _looks_like_url(value: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://", value)) or bool(re.match(r"^[\w.-]+@[\w.-]+:", value))


def _git_toplevel(folder: Path) -> Path | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None
    return Path(out.stdout.strip()).resolve() if out.returncode == 0 and out.stdout.strip() else None


MANIFEST_NAME = "vectorops.yaml"


def discover_manifest(start: Path) -> Path | None:
    """The nearest ``vectorops.yaml`` in ``start`` or a folder above it, as git and DVC find their
    own files: the search stops at the git repository's root (or the filesystem's root outside one),
    so a manifest in an unrelated parent folder is never picked up. Shown relative to ``start``."""
    here = start.resolve()
    for folder in (here, *here.parents):
        candidate = folder / MANIFEST_NAME
        if candidate.is_file():
            return Path(os.path.relpath(candidate, start)) if folder != here else Path(MANIFEST_NAME)
        if (folder / ".git").exists():
            return None
    return None


def load_manifest(path: str | os.PathLike[str]) -> LoadedManifest:
    """Read, validate and check the meaning of a manifest; raise one ManifestError listing every problem."""
    p = Path(path)
    shown = str(path)
    if not p.exists():
        raise ManifestError(
            f"{shown}: no such manifest",
            hint="Run from the folder holding vectorops.yaml or pass -m/--manifest PATH.",
        )
    if p.is_dir():
        raise ManifestError(f"{shown}: is a folder, not a manifest file", hint="Pass the YAML file itself with -m.")
    text = read_bounded_text(p, shown)
    data, pos = parse_yaml_with_positions(text, shown)
    if not isinstance(data, dict):
        raise ManifestError(f"{pos.at(())}: the manifest must be a mapping with keys version, datasets, environments")
    types = _destination_types(data, pos)
    try:
        model = _models_for(types).model_validate(data)
    except ValidationError as exc:
        raise _format_validation_error(exc, pos, types) from None
    loaded = LoadedManifest(model=model, path=p.resolve(), positions=pos, repo_root=_git_toplevel(p.resolve().parent))
    problems = check_meaning(loaded)
    if problems:
        raise ManifestError("invalid manifest:\n" + "\n".join(f"  {x}" for x in problems))
    return loaded


def _destination_types(data: dict[str, Any], pos: Positions) -> tuple[type[DestinationSettings], ...]:
    """The settings models this manifest's destinations need: the built-in types plus each
    installed plug-in it names. An unknown ``type`` is left for validation to report (with what to
    install); a plug-in that is installed but broken is reported here, naming its package."""
    named: list[tuple[str, str]] = []
    envs = data.get("environments")
    for env_name, env in (envs.items() if isinstance(envs, dict) else ()):
        dest = env.get("destination") if isinstance(env, dict) else None
        if isinstance(dest, dict) and isinstance(dest.get("type"), str):
            named.append((dest["type"], pos.at(("environments", env_name, "destination", "type"))))
    problems = []
    types: tuple[type[DestinationSettings], ...] = registry.builtin_types()
    for name, where in named:
        try:
            found, _ = registry.resolve([name])
        except registry.RegistryError as exc:
            problems.append(f"{where}: {exc}. Reinstall or upgrade that package, or remove it.")
            continue
        types += tuple(t for t in found if t not in types)
    if problems:
        raise ManifestError("invalid manifest:\n" + "\n".join(f"  {p}" for p in problems))
    return types


def check_meaning(m: LoadedManifest) -> list[str]:
    """Cross-references the schema cannot express, each with its position and a fix."""
    problems: list[str] = []
    model = m.model
    for name, ds in model.datasets.items():
        norm = posixpath.normpath(ds.path)
        if ds.path.startswith("/") or norm == ".." or norm.startswith("../"):
            problems.append(
                f"{m.where('datasets', name, 'path')}: datasets.{name}.path '{ds.path}' leaves the dataset's repo. "
                "Give the path of the DVC-tracked file relative to the repo root."
            )
        if ds.metadata_fields and (ds.id_field in ds.metadata_fields or ds.vector_field in ds.metadata_fields):
            problems.append(
                f"{m.where('datasets', name, 'metadata_fields')}: metadata_fields must not include the id or vector field. Remove "
                f"'{ds.id_field if ds.id_field in ds.metadata_fields else ds.vector_field}' from the list."
            )
        if ds.repo is not None and not _looks_like_url(ds.repo):
            repo_path = m.resolve_local(ds.repo)
            if not repo_path.is_dir():
                problems.append(
                    f"{m.where('datasets', name, 'repo')}: datasets.{name}.repo: no such folder {repo_path}. "
                    "Give a git URL or a path relative to the manifest's folder, or drop 'repo' to use the manifest's own repo."
                )
    for name, env in model.environments.items():
        if env.dataset not in model.datasets:
            problems.append(
                f"{m.where('environments', name, 'dataset')}: environment '{name}' uses unknown dataset '{env.dataset}'. "
                f"Datasets defined: {', '.join(model.datasets)}."
            )
        for i, req in enumerate(env.requires):
            if req == name:
                problems.append(f"{m.where('environments', name, 'requires', i)}: environment '{name}' cannot require itself. Remove '{req}' from its requires.")
            elif req not in model.environments:
                problems.append(
                    f"{m.where('environments', name, 'requires', i)}: environment '{name}' requires unknown environment '{req}'. "
                    f"Environments defined: {', '.join(model.environments)}."
                )
            elif model.environments[req].dataset != env.dataset:
                problems.append(
                    f"{m.where('environments', name, 'requires', i)}: environment '{name}' requires '{req}', which deploys another dataset "
                    f"('{model.environments[req].dataset}'); requires only makes sense between environments of one dataset."
                )
        if env.sync.self_heal and not env.sync.auto:
            problems.append(
                f"{m.where('environments', name, 'sync', 'self_heal')}: environment '{name}' sets sync.self_heal without sync.auto; "
                "the agent repairs drift only in environments it may apply. Set sync: {auto: true, self_heal: true}, or drop self_heal."
            )
        if env.validation is not None:
            canary = m.resolve_local(env.validation.canaries)
            outside = m.outside_repository(canary)
            if outside:
                problems.append(f"{m.where('environments', name, 'validation', 'canaries')}: {outside}")
            elif not canary.is_file():
                problems.append(
                    f"{m.where('environments', name, 'validation', 'canaries')}: canary file {env.validation.canaries} not found "
                    f"(looked for {canary}). Create it, or fix the path: it is relative to the manifest's folder."
                )
    problems.extend(_requires_cycles(m))
    for name, env in model.environments.items():
        if env.rollout.strategy == "blue_green":
            why = env.destination.blue_green_refusal()
            if why:
                problems.append(f"{m.where('environments', name, 'rollout', 'strategy')}: environment '{name}': {why}")
    seen: dict[str, str] = {}
    for name, env in model.environments.items():
        addr = destination_key(m, env)
        if addr in seen:
            problems.append(
                f"{m.where('environments', name, 'destination')}: environments '{seen[addr]}' and '{name}' point at the same destination; "
                "give each environment its own table/index/namespace."
            )
        seen[addr] = name
    return problems


def _requires_cycles(m: LoadedManifest) -> list[str]:
    envs = m.model.environments
    state: dict[str, int] = {}
    out: list[str] = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for i, r in enumerate(envs[n].requires):
            if r not in envs or r == n:  # both reported by check_meaning already
                continue
            if state.get(r) == 1:
                cycle = stack[stack.index(r):] + [r] if r in stack else [n, r]
                out.append(
                    f"{m.where('environments', n, 'requires', i)}: requires forms a cycle: {' -> '.join(cycle)}. "
                    "Remove one of these requirements so promotion runs in one direction."
                )
            elif r not in state:
                visit(r, stack + [r])
        state[n] = 2

    for n in envs:
        if n not in state:
            visit(n, [n])
    return out


def destination_key(m: LoadedManifest, env: Environment) -> str:
    """Identity of a destination, for detecting two environments writing one index."""
    return env.destination.key(DestinationContext(environment="", folder=m.folder))


if __name__ == "__main__":  # python -m reconciler.manifest --schema > schemas/vectorops.schema.json
    import sys

    if sys.argv[1:] != ["--schema"]:
        sys.exit("usage: python -m reconciler.manifest --schema > schemas/vectorops.schema.json")
    sys.stdout.write(schema_text())
