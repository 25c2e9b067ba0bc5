"""Generate docs/bad-input.md by RUNNING every bad input through the real `vectorops` CLI.

    /work/venv/bin/python docs/gen_bad_input.py > docs/bad-input.md

Each case builds its input in a temp folder (real git + DVC repos, real LanceDB, the local
Pinecone server), runs the command in-process exactly as the console script runs it, and records
the first line of the message, the exit code, and whether anything was written to the
destination. Temp paths are replaced with placeholders so the table does not change between runs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.update(
    DVC_NO_ANALYTICS="1", NO_COLOR="1", VECTOROPS_ACTOR="someone@laptop",
    GIT_AUTHOR_NAME="docs", GIT_AUTHOR_EMAIL="docs@example.com", GIT_COMMITTER_NAME="docs", GIT_COMMITTER_EMAIL="docs@example.com",
)

from click.testing import CliRunner  # noqa: E402

from fixtures import DatasetRepo, make_records  # noqa: E402
from fixtures.bad_data import commit_bad_versions  # noqa: E402
from reconciler.cli import main  # noqa: E402

DIM = 16
KEY_ENV = "DOCS_PINECONE_KEY"
KEY = "pcsk_docs_example_key_000000"


@dataclass
class Case:
    category: str
    what: str
    args: list[str]
    setup: Callable[[], None] | None = None
    elsewhere: bool = False  # run in a folder with no vectorops.yaml


def run(args: list[str], cwd: Path) -> tuple[int, str]:
    runner = CliRunner()
    old = Path.cwd()
    with runner.isolation(env={"NO_COLOR": "1"}) as (stdout, stderr, _):
        os.chdir(cwd)
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os.chdir(old)
        return code, stderr.getvalue().decode() or stdout.getvalue().decode()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".vectorops.lock")}


def stored(server: Any) -> str:
    """Everything the local Pinecone server holds, as ids per namespace per index (internal view)."""
    return json.dumps({n: {ns: sorted(space.records) for ns, space in idx.namespaces.items()} for n, idx in server._indexes.items()})


def main_() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="vectorops-bad-input-"))
    os.environ["VECTOROPS_CACHE_DIR"] = str(tmp / "cache")
    repo = DatasetRepo.create(tmp / "repo")
    good = make_records(30, DIM, seed=1)
    repo.commit_version(good, tag="v1")
    repo.commit_version(make_records(30, DIM, seed=2), tag="v2")

    commit_bad_versions(repo, good, DIM)
    uni = [dict(r) for r in good]
    uni[5]["id"] = "doc-é5"
    repo.commit_version(uni, tag="unicode-id")
    big = [dict(r) for r in good]
    big[6]["title"] = "x" * 50_000
    repo.commit_version(big, tag="big-metadata")
    first = repo.git("rev-list", "--max-parents=0", "HEAD")
    shards = DatasetRepo(repo.root, repo.remote, "data/shards", "parquet", "fixed_size_list")
    shards.commit_shards([good[:15], [*good[15:], dict(good[0])]], tag="dup-across-files")
    import pyarrow as pa

    repo.commit_table(pa.table({"id": pa.array([], pa.string()), "vector": pa.array([], pa.list_(pa.float32(), DIM)),
                                "title": pa.array([], pa.string())}), tag="empty")
    repo.commit_version(make_records(10, DIM, seed=8), tag="unpushed", push=False)
    clone = repo.clone(tmp / "clone")

    work = tmp / "project"
    work.mkdir()
    mpath = work / "vectorops.yaml"
    lancedb = work / ".vectorops" / "lancedb"

    def manifest(version: str = "v1", dataset: str = "", env: str = "", dest: str = "", repo_path: Path | str = repo.root, path: str = "data/docs.parquet") -> str:
        destination = dest or "      type: lancedb\n      table: docs_staging\n"
        return (
            f"version: 1\ndatasets:\n  docs:\n    path: {path}\n    repo: {repo_path}\n{dataset}    embedding:\n"
            f"      model: test-model\n      dimension: {DIM}\nenvironments:\n  staging:\n    dataset: docs\n"
            f"    version: {version}\n    destination:\n{destination}{env}"
        )

    pinecone = f"      type: pinecone\n      index: docs-prod\n      api_key_env: {KEY_ENV}\n"

    def write(text: str) -> Callable[[], None]:
        return lambda: mpath.write_text(text)

    def edit(old: str, new: str) -> Callable[[], None]:
        return lambda: mpath.write_text(manifest().replace(old, new, 1))

    def canaries(text: str) -> Callable[[], None]:
        def setup() -> None:
            (work / "canaries.yaml").unlink(missing_ok=True)  # never write through a symlink left by a case
            (work / "canaries.yaml").write_text(text)
            mpath.write_text(manifest(env="    validation:\n      canaries: canaries.yaml\n"))
        return setup

    m = ["-m", str(mpath)]
    cases = [
        Case("manifest", "YAML syntax error", [*m, "validate"], write("version: 1\ndatasets: [\n")),
        Case("manifest", "wrong type (`dimension: big`)", [*m, "validate"], edit(f"dimension: {DIM}", "dimension: big")),
        Case("manifest", "unknown key", [*m, "validate"], edit(f"dimension: {DIM}\n", f"dimension: {DIM}\n      dims: 3\n")),
        Case("manifest", "duplicate key", [*m, "validate"], edit("    version: v1\n", "    version: v1\n    version: v2\n")),
        Case("manifest", "missing required key", [*m, "validate"], edit("    version: v1\n", "")),
        Case("manifest", "no `datasets` section", [*m, "validate"], lambda: mpath.write_text("version: 1\nenvironments: {}\n")),
        Case("manifest", "environment uses an undefined dataset", [*m, "validate"], edit("dataset: docs", "dataset: dcos")),
        Case("manifest", "bad environment name", [*m, "validate"], edit("  staging:", "  Staging:")),
        Case("manifest", "bad dataset name", [*m, "validate"], lambda: mpath.write_text(manifest().replace("  docs:", "  Docs!:").replace("dataset: docs", "dataset: Docs!"))),
        Case("manifest", "`version:` is not 1", [*m, "validate"], edit("version: 1\n", "version: 2\n")),
        Case("manifest", "dataset path escaping the repo", [*m, "validate"], write(manifest(path="../../etc/passwd"))),
        Case("manifest", "absolute dataset path", [*m, "validate"], write(manifest(path="/etc/passwd"))),
        Case("manifest", "`repo:` folder that does not exist", [*m, "validate"], write(manifest(repo_path=tmp / "gone"))),
        Case("manifest", "`api_key_env` holding a key instead of a variable name", [*m, "validate"],
             write(manifest(dest=pinecone.replace(KEY_ENV, "pcsk_abc123_THIS_IS_A_KEY")))),
        Case("manifest", "`api_key_env` holding a key, at plan", [*m, "plan"], write(manifest(dest=pinecone.replace(KEY_ENV, "pcsk_abc123_THIS_IS_A_KEY")))),
        Case("manifest", "`api_key_env` names an unset variable", [*m, "plan"], write(manifest(dest=pinecone.replace(KEY_ENV, "UNSET_KEY_VARIABLE")))),
        Case("manifest", "no manifest in the current folder", ["validate"], elsewhere=True),
        Case("manifest", "`rollout: blue_green` on a destination without aliases (LanceDB)", [*m, "validate"],
             write(manifest(env="    rollout:\n      strategy: blue_green\n"))),
        Case("manifest", "`rollout.keep` below 2", [*m, "validate"], write(manifest(env="    rollout:\n      strategy: in_place\n      keep: 1\n"))),
        Case("manifest", "`sync.self_heal` without `sync.auto`", [*m, "validate"], write(manifest(env="    sync:\n      self_heal: true\n"))),
        Case("manifest", "unknown `policy.refresh` level", [*m, "validate"], write(manifest(env="    policy:\n      refresh: most\n"))),
        Case("manifest", "unknown environment on the command line", [*m, "plan", "prod"], write(manifest())),
        Case("dataset", "unknown git rev", [*m, "validate"], write(manifest(version="v9"))),
        Case("dataset", "path not tracked by DVC at that rev", [*m, "validate"], write(manifest(version=first))),
        Case("dataset", "data in neither the DVC cache nor the remote", [*m, "validate"], write(manifest(version="unpushed", repo_path=clone))),
        Case("dataset", "missing columns", [*m, "validate"], write(manifest(dataset="    vector_field: embedding\n    metadata_fields: [title, url]\n"))),
        Case("dataset", "dimension differs from the manifest", [*m, "validate"], write(manifest().replace(f"dimension: {DIM}", "dimension: 12"))),
        Case("dataset", "NaN or infinite vector values", [*m, "validate"], write(manifest(version="nan"))),
        Case("dataset", "duplicate ids within a batch", [*m, "validate"], write(manifest(version="dup-ids"))),
        Case("dataset", "duplicate ids across files", [*m, "plan"], write(manifest(version="dup-across-files", path="data/shards"))),
        Case("dataset", "empty or missing ids", [*m, "validate"], write(manifest(version="empty-ids"))),
        Case("dataset", "non-string ids", [*m, "validate"], write(manifest(version="int-ids"))),
        Case("dataset", "metadata over Pinecone's 40 KB per record", [*m, "plan"], write(manifest(version="big-metadata", dest=pinecone))),
        Case("dataset", "non-ASCII ids for Pinecone", [*m, "plan"], write(manifest(version="unicode-id", dest=pinecone))),
        Case("canary file", "unknown ids in `vector_of`/`expect`", [*m, "validate", "--canaries"],
             canaries("top_k: 5\nqueries:\n  - name: q\n    vector_of: nope-1\n    expect: [doc-1, nope-2]\n")),
        Case("canary file", "wrong dimension", [*m, "validate", "--canaries"], canaries("queries:\n  - name: q\n    vector: [0.1, 0.2]\n    expect: [doc-1]\n")),
        Case("canary file", "malformed YAML", [*m, "validate", "--canaries"], canaries("queries: [\n")),
        Case("canary file", "wrong shape (no queries)", [*m, "validate", "--canaries"], canaries("top_k: ten\n")),
        Case("canary file", "file missing", [*m, "validate", "--canaries"], lambda: ((work / "canaries.yaml").unlink(missing_ok=True), mpath.write_text(manifest(env="    validation:\n      canaries: canaries.yaml\n")))),
    ]
    laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9))

    def damaged(name: str, how: str) -> Path:
        """A private copy of the dataset repo whose objects for v2 are damaged ``how``."""
        copy = repo.copy(tmp / name)
        digest = copy.versions[1].digest
        cache = copy.root / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
        remote = copy.remote / "files" / "md5" / digest[:2] / digest[2:]
        v1 = copy.versions[0].digest
        other = (copy.root / ".dvc" / "cache" / "files" / "md5" / v1[:2] / v1[2:]).read_bytes()
        for target in (cache, remote):
            target.chmod(0o644)
        if how == "swapped":
            cache.write_bytes(other)
        elif how == "truncated":
            cache.write_bytes(cache.read_bytes()[:1000])
        else:  # the remote's copy swapped, none in the cache
            cache.unlink()
            remote.write_bytes(other)
        return copy.root

    swapped, truncated, remote_swapped = damaged("swapped", "swapped"), damaged("truncated", "truncated"), damaged("remote", "remote")

    def canary_link() -> None:
        link = work / "canaries.yaml"
        link.unlink(missing_ok=True)
        link.symlink_to("/etc/passwd")
        mpath.write_text(manifest(env="    validation:\n      canaries: canaries.yaml\n"))

    cases += [
        Case("manifest", "YAML alias bomb (\"billion laughs\")", [*m, "validate"], write("version: 1\n" + laughs)),
        Case("manifest", "50,000 nested `[`", [*m, "validate"], write("version: 1\ndatasets: " + "[" * 50_000 + "]" * 50_000 + "\n")),
        Case("manifest", "file over 4 MiB", [*m, "validate"], write(manifest() + "#" * (4 * 1024 * 1024) + "\n")),
        Case("manifest", "CR/LF (a forged log line) in `version:`", [*m, "validate"], edit("version: v1", 'version: "v1\\r\\n::error::forged"')),
        Case("manifest", "ANSI escape in a path", [*m, "validate"], lambda: mpath.write_text(manifest().replace("path: data/docs.parquet", 'path: "data/\\e[31mdocs.parquet"'))),
        Case("canary file", "path outside the repository (`/etc/passwd`)", [*m, "validate"],
             lambda: mpath.write_text(manifest(env="    validation:\n      canaries: /etc/passwd\n"))),
        Case("canary file", "symlink to a file outside the repository", [*m, "validate"], canary_link),
        Case("canary file", "content is never quoted (unknown key, wrong value)", [*m, "validate", "--canaries"],
             canaries("S3cretKey: 1\ntop_k: hunter2\nqueries: []\n")),
        Case("canary file", "YAML alias bomb", [*m, "validate", "--canaries"], canaries("top_k: 1\n" + laughs)),
        Case("dataset", "DVC cache object swapped for another valid Parquet file", [*m, "apply", "--auto-approve"],
             write(manifest(version="v2", repo_path=swapped))),
        Case("dataset", "truncated DVC cache object", [*m, "apply", "--auto-approve"], write(manifest(version="v2", repo_path=truncated))),
        Case("dataset", "DVC remote object swapped (not in the cache)", [*m, "apply", "--auto-approve"],
             write(manifest(version="v2", repo_path=remote_swapped))),
    ]
    planfile = work / "staging.plan"

    def saved_plan(then: Callable[[], None]) -> Callable[[], None]:
        def setup() -> None:
            mpath.write_text(manifest(version="v2"))
            run([*m, "plan", "-o", str(planfile)], work)
            then()
        return setup

    def applied_then(then: Callable[[], None]) -> Callable[[], None]:
        def setup() -> None:
            mpath.write_text(manifest())
            run([*m, "apply", "--auto-approve"], work)
            then()
        return setup

    def lock_held() -> None:
        from reconciler.manifest import load_manifest
        from reconciler.providers import open_destination

        open_destination(load_manifest(str(mpath)), "staging").write_doc("lock", {
            "id": "6f1c2d3e-0000-4000-8000-000000000000", "owner": "alice@build-host", "operation": "apply",
            "acquired_at": "2030-01-01T10:00:00Z", "expires_at": "2099-01-01T10:01:00Z", "host": "build-host", "pid": 4242})

    def corrupt_state() -> None:
        from reconciler.manifest import load_manifest
        from reconciler.providers import open_destination

        open_destination(load_manifest(str(mpath)), "staging").write_doc("state", {"serial": "many"})

    def corrupt_lock() -> None:
        from reconciler.manifest import load_manifest
        from reconciler.providers import open_destination

        mpath.write_text(manifest(version="v2"))
        run([*m, "import", "staging", "--version", "v1", "--auto-approve"], work)
        open_destination(load_manifest(str(mpath)), "staging").write_doc("lock", {"id": 7, "owner": None})

    cases += [
        Case("dataset", "a version with 0 records (without `policy.allow_empty: true`)", [*m, "plan"], write(manifest(version="empty"))),
        Case("state", "unreadable lock document (`force-unlock ENV unreadable` removes it)", [*m, "force-unlock", "staging", "not-the-id"],
             corrupt_lock),
        Case("plan file", "corrupt plan file", [*m, "apply", str(planfile)], lambda: (mpath.write_text(manifest()), planfile.write_text("{not a plan"))),
        Case("plan file", "plan for an environment the manifest lacks", [*m, "apply", str(planfile)],
             saved_plan(lambda: mpath.write_text(manifest(version="v2").replace("  staging:", "  other:")))),
        Case("plan file", "plan for another destination", [*m, "apply", str(planfile)],
             saved_plan(lambda: mpath.write_text(manifest(version="v2").replace("table: docs_staging", "table: docs_other")))),
        Case("plan file", "stale plan (the destination moved since)", [*m, "apply", str(planfile)],
             saved_plan(lambda: run([*m, "apply", "--auto-approve"], work))),
        Case("flags", "unknown flag", [*m, "plan", "--bogus"], write(manifest())),
        Case("flags", "bad `--refresh` value", [*m, "plan", "--refresh", "most"]),
        Case("flags", "`apply` with no terminal and no `--auto-approve`", [*m, "apply"], write(manifest(version="v1"))),
        Case("flags", "`drift --refresh none`", [*m, "drift", "--refresh", "none"]),
        Case("flags", "`--sample-size 0`", [*m, "plan", "--refresh", "sample", "--sample-size", "0"]),
        Case("flags", "`--jobs 0`", [*m, "plan", "--jobs", "0"]),
        Case("flags", "`reconcile --interval soon`", [*m, "reconcile", "--once", "--interval", "soon"]),
        Case("flags", "`--limit 0`", [*m, "history", "staging", "--limit", "0"]),
        Case("flags", "`import` without `--version`", [*m, "import", "staging"]),
        Case("state", "malformed state record (recover with `vectorops import ENV --version REV`)", [*m, "plan"], applied_then(corrupt_state)),
        Case("state", "lock held by another apply", [*m, "apply", "--auto-approve"],
             lambda: (mpath.write_text(manifest(version="v2")), run([*m, "import", "staging", "--version", "v1", "--auto-approve"], work), lock_held())),
        Case("state", "`force-unlock` with the wrong lock id", [*m, "force-unlock", "staging", "not-the-id"]),
    ]

    from tests.pinecone_server import PineconeServer

    server = PineconeServer(api_key=KEY).start()
    os.environ["PINECONE_CONTROLLER_HOST"] = server.url
    os.environ[KEY_ENV] = KEY
    url = server.url
    cases.append(Case("destination", "Pinecone `host:` that does not serve the index (404)", [*m, "plan"],
                      write(manifest(dest=pinecone + f"      host: {url}\n"))))
    rows = []
    try:
        for case in cases:
            if case.setup:
                case.setup()
            before = snapshot(lancedb) if lancedb.exists() else {}
            stored_before = stored(server)
            code, text = run(case.args, tmp if case.elsewhere else work)
            after = snapshot(lancedb) if lancedb.exists() else {}
            touched = {Path(k).relative_to(lancedb).parts[0] for k in set(after) ^ set(before) | {k for k in after if after.get(k) != before.get(k)}}
            changed = sorted(t.removesuffix(".lance") for t in touched) + (["pinecone index"] if stored_before != stored(server) else [])
            lines = text.strip().splitlines() or ["(no message)"]
            first_line = lines[0] + (" " + lines[1].strip() if lines[0].endswith(":") and len(lines) > 1 else "")
            bug = "vectorops bug" in text or "Traceback" in text
            rows.append((case, code, first_line, changed, bug))
    finally:
        server.stop()

    placeholders = [(str(clone), "<clone>"), (str(swapped), "<repo>"), (str(truncated), "<repo>"), (str(remote_swapped), "<repo>"),
                    (str(repo.root), "<repo>"), (str(mpath), "<manifest>"), (str(work), "<project>"), (str(tmp), "<tmp>"), (url, "<pinecone>")]
    print("# Bad input: what vectorops says\n")
    print("Generated by running every case through the real CLI: `python docs/gen_bad_input.py > docs/bad-input.md`.")
    print("`<manifest>`, `<repo>`, `<project>` stand for your paths. Every case exits 1 with one message on stderr")
    print("(first line shown; the next line says how to fix it) and writes no records. Where the 'written' column names")
    print("the `_vectorops` state table, the command took and released the environment's lock or created the empty")
    print("state table; no record was written.")
    print("A malformed state record is repaired with `vectorops import ENV --version REV`.\n")
    print("| input | bad input | command | exit | message (first line) | written |")
    print("|---|---|---|---|---|---|")
    for case, code, line, changed, bug in rows:
        for old, new in placeholders:
            line = line.replace(old, new)
        cmd = " ".join(a for a in case.args if a not in ("-m", str(mpath))).replace(str(planfile), "PLANFILE")
        line = line.replace("|", "\\|")
        written = "nothing" if not changed else ", ".join(
            "state table (`_vectorops`: lock taken and released, or created empty)" if t == "_vectorops" else f"**{t}**" for t in changed)
        flag = " **(BUG: reported as a vectorops bug)**" if bug else ""
        print(f"| {case.category} | {case.what} | `vectorops {cmd}` | {code} | {line}{flag} | {written} |")


if __name__ == "__main__":
    main_()
