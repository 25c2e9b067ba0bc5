"""The `vectorops` command: a thin click layer over the engine.

Parse flags, call the engine, render its data, turn the outcome into an exit code (Terraform's:
0 ok, 1 error, 2 changes with --detailed-exitcode). Heavy modules are imported inside commands so
`vectorops --help` starts fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler import __version__
from reconciler.errors import UsageError, VectorOpsError

if TYPE_CHECKING:  # the CLI imports the engine lazily, so `vectorops --help` stays fast
    from reconciler.engine.values import Operation

REFRESH = click.Choice(["none", "stats", "sample", "ids", "full"])
REFRESH_HELP = "How closely to read the destination [default: the environment's policy.refresh, else ids]."


class Settings:
    """The global options (SPEC §3), one object for the whole command line: the root context's ``obj``."""

    def __init__(self) -> None:
        self.manifest: str | None = None  # None: look for vectorops.yaml here and upward
        self.color = True
        self.verbose = False


def _plain() -> bool:
    """--no-color or NO_COLOR (any non-empty value, no-color.org): no escape sequence at all, not even bold."""
    ctx = click.get_current_context(silent=True)
    s: Settings = (ctx.find_object(Settings) if ctx else None) or Settings()
    return not s.color or bool(os.environ.get("NO_COLOR"))


def _verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    s: Settings | None = ctx.find_object(Settings) if ctx else None
    return bool(s and s.verbose)


def _console(stderr: bool = False):
    from rich.console import Console

    if _plain():  # color_system=None drops every style (bold included), not only colours
        return Console(stderr=stderr, color_system=None, highlight=False, soft_wrap=True, emoji=False)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def out(text: str, *, stderr: bool = False) -> None:
    from reconciler.redact import printable_lines

    _console(stderr).print(printable_lines(text))


def _set_manifest(ctx: click.Context, _p: click.Parameter, value: Any) -> Any:
    if value is not None:
        ctx.ensure_object(Settings).manifest = value
    return value


def _set_no_color(ctx: click.Context, _p: click.Parameter, value: Any) -> Any:
    if value:
        ctx.ensure_object(Settings).color = False
    return value


def _set_verbose(ctx: click.Context, _p: click.Parameter, value: Any) -> Any:
    if value:
        ctx.ensure_object(Settings).verbose = True
    return value


def global_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """-m/--no-color/-v are accepted before or after the command name (SPEC §3)."""
    f = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbose, help="More detail on errors.")(f)
    f = click.option("--no-color", is_flag=True, expose_value=False, callback=_set_no_color, help="Plain output.")(f)
    f = click.option(
        "-m", "--manifest", default=None, expose_value=False, callback=_set_manifest, metavar="PATH", help="Manifest (default: vectorops.yaml here or in the nearest folder above, up to the git root)."
    )(f)
    return f


def _warn_if_dirty(m: Any) -> None:
    """Terraform's dirty-workspace warning, on stderr so --json stays parseable."""
    from reconciler.workspace import dirty_warnings

    for text in dirty_warnings(m):
        out(f"[yellow]Warning:[/] {text}", stderr=True)


def _manifest():
    from reconciler.manifest import load_manifest

    s = click.get_current_context().find_object(Settings) or Settings()
    if s.manifest is not None:  # -m wins
        return load_manifest(s.manifest)
    from reconciler.errors import ManifestError
    from reconciler.manifest import MANIFEST_NAME, discover_manifest

    found = discover_manifest(Path.cwd())
    if found is None:
        raise ManifestError(
            f"no {MANIFEST_NAME} in {Path.cwd()} or a folder above it (the search stops at a git repository's root)",
            hint="Run from the folder holding vectorops.yaml (or below it), or pass -m/--manifest PATH.",
        )
    return load_manifest(found)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vectorops")
@global_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Reconcile vector indexes to DVC-pinned embedding datasets, Terraform-style.

    \b
    validate → plan → apply, with state, locks and history kept in the destination itself.
    """
    ctx.ensure_object(Settings)


# -- progress ------------------------------------------------------------------------------------


def _progress() -> Any:
    """The progress display (``render.progress``), on stderr so --json stays parseable."""
    from reconciler.render.progress import ProgressReporter

    return ProgressReporter(lambda: _console(stderr=True), plain=_plain())


@contextlib.contextmanager
def _session(m: Any) -> Iterator[Any]:
    """The command's destinations: each environment's opened once, all closed when the command ends,
    then what they warned about shown, whatever the outcome (on stderr, so --json stays parseable)."""
    from reconciler.engine.session import DestinationSession

    session = DestinationSession(m)
    try:
        with session:
            yield session
    finally:
        warnings = session.take_warnings()
        if warnings:
            from reconciler.render.human import destination_warnings

            out(destination_warnings([w.to_json() for w in warnings]), stderr=True)


# -- commands ----------------------------------------------------------------------------------


@cli.command()
@global_options
@click.option("--canaries", is_flag=True, help="Also check canary files against the pinned versions (ids exist, dimensions agree).")
def validate(canaries: bool) -> None:
    """Check the manifest (schema and meaning) without touching any destination."""
    from reconciler.engine.validation import check_environments
    from reconciler.render.human import render_validate

    m = _manifest()
    out(render_validate(m.path.name, len(m.model.datasets), check_environments(m, canaries=canaries)))


def _plan_common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--replace", is_flag=True, help="Rebuild the destination from the dataset: every record rewritten, others deleted (e.g. a new embedding model)."
    )(f)
    f = click.option("--refresh", type=REFRESH, default=None, help=REFRESH_HELP)(f)
    f = _sample_size_option(f)
    f = click.option("--allow-deletes", is_flag=True, help="Approve deletes over policy.max_delete_fraction.")(f)
    return _jobs_option(f)


def _set_jobs(_ctx: click.Context, _p: click.Parameter, value: int | None) -> None:
    from reconciler.engine import shards

    shards.configure(value)


def _set_sample_size(_ctx: click.Context, _p: click.Parameter, value: int | None) -> None:
    from reconciler.engine import sampling

    sampling.configure(value)


def _sample_size_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--sample-size N``: expected ids the `sample` refresh fetches and compares (default 10,000)."""
    return click.option(
        "--sample-size", type=click.IntRange(min=1), default=None, expose_value=False, callback=_set_sample_size,
        help="With --refresh sample: how many expected ids to fetch and compare [default: 10,000].",
    )(f)


def _set_executor(_ctx: click.Context, _p: click.Parameter, value: str | None) -> None:
    from reconciler.engine import executors

    executors.configure(value)


def _jobs_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--jobs N``: processes hashing a sharded dataset's shards (default: one per core); ``--executor``:
    where that work and the diff run (SPEC §10)."""
    f = click.option(
        "--executor", type=click.Choice(["local", "ray"]), default=None, expose_value=False, callback=_set_executor,
        help="Where shard hashing, the diff and record reads run: local processes, or a Ray cluster (RAY_ADDRESS, "
        "or the manifest's executor.address) [default: the manifest's executor, else local].",
    )(f)
    return click.option(
        "--jobs", type=click.IntRange(min=1), default=None, expose_value=False, callback=_set_jobs,
        help="Processes that hash a sharded dataset's shards in parallel [default: the number of cores].",
    )(f)


@cli.command()
@global_options
@click.argument("environments", nargs=-1)
@_plan_common
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (SPEC §4).")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False), help="Save the plan for `apply PLANFILE`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes or drift.")
def plan(
    environments: tuple[str, ...], refresh: str, replace: bool, allow_deletes: bool, as_json: bool, out_file: str | None, detailed_exitcode: bool
) -> None:
    """Show what apply would change, and any drift."""
    from reconciler.engine.plan import build_plan
    from reconciler.render.human import render_plan, saved_plan_line

    m = _manifest()
    names = m.environment_names(environments)
    if out_file:
        _check_plan_folder(out_file)  # before the plan's work, not after
    _warn_if_dirty(m)
    reporter = _progress()
    try:
        with _session(m) as session:
            p = build_plan(m, names, refresh=refresh, allow_deletes=allow_deletes, replace=replace, progress=reporter.hashing, session=session)
    finally:
        reporter.stop()
    if out_file:
        _save_plan(p, out_file)
    data = p.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        out(render_plan(data, _console().width))
        if out_file:
            out(saved_plan_line(out_file))
    if detailed_exitcode and (p.has_changes or p.has_drift):
        sys.exit(2)  # SPEC §3: changes or drift, so drift that changes nothing (stats, prune: false) still shows


def _check_plan_folder(out_file: str) -> None:
    folder = Path(out_file).parent
    if not folder.is_dir():
        from reconciler.ioerrors import EnvironmentIOError

        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise EnvironmentIOError(
            f"cannot save the plan to {out_file}: the folder {folder} {what}",
            hint=f"Create the folder first (mkdir -p {folder}), or choose another path for -o.",
        )


def _save_plan(p: Any, out_file: str) -> None:
    from reconciler.ioerrors import as_io_error

    try:
        p.save(out_file)
    except OSError as exc:  # the temp file beside it failed: name the file the user asked for
        error = as_io_error(OSError(exc.errno, exc.strerror, out_file), hint="The plan was not saved; choose another path for -o.")
        if error is None:
            raise
        raise error from None


def _confirm(question: str, hint: str = "Re-run with --auto-approve (in CI), or apply a saved plan: vectorops plan -o PLAN && vectorops apply PLAN.") -> bool:
    if not sys.stdin.isatty():
        raise UsageError(f"{question.removesuffix(' [y/N]').rstrip('?')} needs confirmation, but there is no terminal to ask on", hint=hint)
    return click.confirm(question.replace(" [y/N]", ""), default=False)


def _run_apply(m: Any, p: Any, *, saved: bool, session: Any, operation: Operation = "apply") -> None:
    """Apply ``p``, show each environment's outcome, exit 1 if any failed."""
    from reconciler.engine.apply import ApplyHooks, apply_plan
    from reconciler.render.human import not_attempted_line, render_validation, result_line

    reporter = _progress()
    results = []

    def done(env: str, result: Any) -> None:
        reporter.stop()
        results.append(result)

    def message(env: str, text: str) -> None:
        reporter.stop()
        out(f"{env}: {text}", stderr=True)

    hooks = ApplyHooks(on_start=reporter.start, on_progress=reporter.advance, on_done=done, on_message=message)
    try:
        apply_plan(m, p, hooks=hooks, saved=saved, operation=operation, session=session)
    finally:
        reporter.stop()
    failed = False
    for r in results:
        if r.validation is not None:
            out(f"{r.name}: canaries")
            out(render_validation(r.validation))
        ok = r.status.ok
        if not ok:
            failed = True
            if r.cause is not None and _verbose():
                import traceback

                from reconciler.redact import redact

                click.echo(redact("".join(traceback.format_exception(r.cause))), err=True)
        out(result_line(r.to_json(), operation), stderr=not ok)
    skipped = [e.name for e in p.environments][len(results):]
    if skipped:
        out(not_attempted_line(skipped), stderr=True)
    if failed:
        sys.exit(1)


@cli.command()
@global_options
@click.argument("targets", nargs=-1)
@_plan_common
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
def apply(targets: tuple[str, ...], refresh: str, replace: bool, allow_deletes: bool, auto_approve: bool) -> None:
    """Apply the plan (asks first), or exactly a saved PLANFILE."""
    from reconciler.engine.plan import Plan, build_plan, check_saved_plan
    from reconciler.render.human import render_plan

    plan_files = [t for t in targets if Path(t).is_file()]
    if plan_files:
        _check_saved_plan_arguments(targets, plan_files[0])
    if len(targets) == 1 and Path(targets[0]).is_file():
        m = _manifest()
        p = Plan.load(targets[0])
        check_saved_plan(m, p, targets[0])
        out(render_plan(p.to_json(), _console().width))
        with _session(m) as session:
            _run_apply(m, p, saved=True, session=session)
        return
    m = _manifest()
    names = m.environment_names(targets)
    _warn_if_dirty(m)
    with _session(m) as session:  # the plan's destinations are the apply's and the validation's
        reporter = _progress()
        try:
            p = build_plan(m, names, refresh=refresh, allow_deletes=allow_deletes, replace=replace, progress=reporter.hashing, session=session)
        finally:
            reporter.stop()
        out(render_plan(p.to_json(), _console().width))
        if not p.has_changes and not any(e.blocked for e in p.environments):
            return
        if not auto_approve and not _confirm("Apply? [y/N]"):
            out("Apply cancelled; nothing was written.")
            sys.exit(1)
        _run_apply(m, p, saved=False, session=session)


def _check_saved_plan_arguments(targets: tuple[str, ...], plan_file: str) -> None:
    """`apply PLANFILE` takes nothing else: the saved plan fixes the environments, the refresh and the approvals."""
    if len(targets) > 1:
        others = ", ".join(t for t in targets if t != plan_file)
        raise UsageError(
            f"apply takes either environments or one saved plan file, not both (got the plan file {plan_file} and {others})",
            hint=f"A saved plan applies to the environments it was made for: vectorops apply {plan_file}. "
            f"For other environments make a plan for them: vectorops plan {others} -o PLANFILE.",
        )
    ctx = click.get_current_context()
    given = [
        f"--{name.replace('_', '-')}" + (f" {ctx.params[name]}" if name == "refresh" else "")
        for name in ("allow_deletes", "replace", "refresh")
        if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
    ]
    if given:
        raise UsageError(
            f"{', '.join(given)} cannot change a saved plan: {plan_file} carries its own approvals and was made at its own refresh level",
            hint=f"Make the plan again with the option: vectorops plan {' '.join(given)} ... -o {plan_file}, review it, then apply it.",
        )



@cli.command()
@global_options
@click.argument("planfile", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def show(planfile: str, as_json: bool) -> None:
    """Print a saved plan as `plan` printed it."""
    from reconciler.engine.plan import Plan
    from reconciler.render.human import render_plan

    data = Plan.load(planfile).to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        out(render_plan(data, _console().width))



@cli.command()
@global_options
@click.argument("environments", nargs=-1)
@click.option("--json", "as_json", is_flag=True)
def status(environments: tuple[str, ...], as_json: bool) -> None:
    """Deployed vs desired version per environment: Synced / OutOfSync / Drifted."""
    from reconciler.engine.status import environment_status
    from reconciler.render.human import render_status

    m = _manifest()
    with _session(m) as session:
        rows = [environment_status(m, name, session).to_json() for name in m.environment_names(environments)]
    if as_json:
        click.echo(json.dumps({"environments": rows}, indent=2))
    else:
        out(render_status(rows))


@cli.command()
@global_options
@click.argument("environment")
@click.option("--limit", type=click.IntRange(min=1), default=None)
@click.option("--json", "as_json", is_flag=True)
def history(environment: str, limit: int | None, as_json: bool) -> None:
    """Every apply on ENVIRONMENT, newest first."""
    from reconciler.engine.status import history_report
    from reconciler.render.human import render_history, render_unreadable_history

    m = _manifest()
    (name,) = m.environment_names([environment])
    with _session(m) as session:
        report = history_report(m, name, limit, session).to_json()
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        out(render_history(name, report["history"], report["total"]))
    if report.get("unreadable"):  # reported, never fatal: one bad document must not hide every other apply
        out(render_unreadable_history(name, report["unreadable"]), stderr=True)


@cli.command()
@global_options
@click.argument("dataset", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=None)
@click.option("--json", "as_json", is_flag=True)
def versions(dataset: str | None, limit: int | None, as_json: bool) -> None:
    """The dataset's versions, newest first (DATASET may be left out when the manifest has one)."""
    from reconciler import dataset as ds
    from reconciler.errors import ManifestError
    from reconciler.render.human import versions_table

    m = _manifest()
    if dataset is None:
        if len(m.model.datasets) != 1:
            raise UsageError(
                f"which dataset? {m.path.name} defines {len(m.model.datasets)}: {', '.join(m.model.datasets)}",
                hint=f"Name one: vectorops versions {next(iter(m.model.datasets), 'DATASET')}.",
            )
        dataset = next(iter(m.model.datasets))
    if dataset not in m.model.datasets:
        raise ManifestError(f"unknown dataset '{dataset}' in {m.path.name}", hint=f"Datasets defined: {', '.join(m.model.datasets)}.")
    infos = ds.list_versions(m.dataset_source(dataset), limit)
    rows: list[dict[str, Any]] = [
        {"commit": v.commit, "date": v.committed_at, "tags": list(v.tags), "digest": v.digest, "records": v.records} for v in infos
    ]
    if as_json:
        click.echo(json.dumps({"dataset": dataset, "versions": rows}, indent=2))
        return
    _console().print(versions_table(rows))


@cli.command("force-unlock")
@global_options
@click.argument("environment")
@click.argument("lock_id")
def force_unlock(environment: str, lock_id: str) -> None:
    """Release a stuck lock (use the id the lock error printed)."""
    from reconciler.engine.state import StateStore

    m = _manifest()
    (name,) = m.environment_names([environment])
    with _session(m) as session:
        held = StateStore(session.destination(name)).force_unlock(lock_id)
    out(f"Released the lock on {name} ({held.describe()}).")


@cli.command()
@global_options
@click.argument("environments", nargs=-1)
@click.option("--refresh", type=REFRESH, default=None, help=REFRESH_HELP)
@click.option("--json", "as_json", is_flag=True)
@_jobs_option
@_sample_size_option
def drift(environments: tuple[str, ...], refresh: str | None, as_json: bool) -> None:
    """Drift check only: exit 2 where the destination differs from what vectorops recorded."""
    from reconciler.engine.drift import drift_report
    from reconciler.render.human import render_drift

    if refresh == "none":  # an option check, before the manifest is read
        raise UsageError("drift needs a refresh level that reads the destination", hint="Use --refresh stats, sample, ids or full.")
    m = _manifest()
    with _session(m) as session:
        report = drift_report(m, m.environment_names(environments), refresh, session)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        out(render_drift(report.to_json(), _console().width))
    if report.has_drift:
        sys.exit(2)


@cli.command()
@global_options
@click.argument("environment")
@click.option("--to", "to_rev", default=None, help="Rev to roll back to (default: the previously deployed version).")
@click.option("--auto-approve", is_flag=True)
def rollback(environment: str, to_rev: str | None, auto_approve: bool) -> None:
    """Apply the previously deployed version (or --to REV), as a diff."""
    from reconciler.engine.rollback import rollback_plan
    from reconciler.render.human import render_plan

    m = _manifest()
    (name,) = m.environment_names([environment])
    with _session(m) as session:
        p = rollback_plan(m, name, to_rev, session)
        out(render_plan(p.to_json(), _console().width))
        if not p.has_changes and not p.environments[0].blocked:
            return
        again = f"vectorops rollback {name}" + (f" --to {to_rev}" if to_rev else "") + " --auto-approve"
        if not auto_approve and not _confirm("Roll back? [y/N]", hint=f"Review the plan above, then re-run with --auto-approve: {again}"):
            out("Rollback cancelled; nothing was written.")
            sys.exit(1)
        _run_apply(m, p, saved=False, operation="rollback", session=session)


@cli.command()
@global_options
@click.argument("src")
@click.argument("dst")
def promote(src: str, dst: str) -> None:
    """Pin DST to the version SRC has deployed and validated (rewrites the manifest, keeping comments)."""
    from reconciler.engine.promotion import promotable
    from reconciler.promote import promote as rewrite
    from reconciler.render.human import promoted_line

    m = _manifest()
    m.environment_names([src, dst])
    with _session(m) as session:
        dep = promotable(m, src, session)
    diff = rewrite(m.path, src, dst, dep.version)
    if not diff:
        out(f"{dst} already pins {dep.version}; nothing to change.")
        return
    click.echo(diff, nl=False)
    out(promoted_line(dst, dep.version))


@cli.command("import")
@global_options
@click.argument("environment")
@click.option("--version", "rev", required=True, help="The dataset rev the index holds (tag, branch or commit).")
@click.option("--refresh", type=click.Choice(["stats", "ids", "full"]), default="ids", show_default=True)
@click.option("--auto-approve", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (implies no prompt unless --auto-approve).")
def import_(environment: str, rev: str, refresh: str, auto_approve: bool, as_json: bool) -> None:
    """Adopt an existing index as deployed at REV, reporting how far it differs."""
    from reconciler.engine.adopt import compare_for_import, record_import
    from reconciler.render.human import imported_line, render_import

    m = _manifest()
    (name,) = m.environment_names([environment])
    with _session(m) as session:
        reporter = _progress()
        try:
            report, dest, _version = compare_for_import(m, name, rev, refresh=refresh, progress=reporter.hashing, destination=session.destination(name))
        finally:
            reporter.stop()
        if as_json:  # one JSON document on stdout, after the import when it was approved: it says whether it was
            if auto_approve:
                record_import(m, report, dest)
            click.echo(json.dumps({**report.to_json(), "recorded": auto_approve}, indent=2))
            return
        out(render_import(report.to_json(), _console().width))
        if not auto_approve:
            again = f"vectorops import {name} --version {rev} --refresh {refresh} --auto-approve"
            if not _confirm(
                "Record this index as deployed at that version? [y/N]", hint=f"Review the comparison above, then re-run with --auto-approve: {again}"
            ):
                out("Import cancelled; nothing was written.")
                sys.exit(1)
        record_import(m, report, dest)
    out(imported_line(name, report.version["version"]))


@cli.command()
@global_options
@click.argument("environment")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False), help="Parquet file to write.")
def export(environment: str, out_file: str) -> None:
    """Write the live index (ids, vectors, metadata) to a Parquet dataset file for `dvc add`."""
    from reconciler.engine.adopt import export_environment
    from reconciler.engine.rollout import readers_destination
    from reconciler.render.human import exported_lines

    m = _manifest()
    (name,) = m.environment_names([environment])
    with _session(m) as session:
        reporter = _progress()
        try:
            n = export_environment(readers_destination(m, name, session), Path(out_file), progress=reporter.hashing)
        finally:
            reporter.stop()
    out(exported_lines(name, n, out_file))


@cli.command()
@global_options
@click.argument("environment")
@click.option("--reason", default=None, help="Why (shown by status, plan and the agent's log).")
def suspend(environment: str, reason: str | None) -> None:
    """Stop the reconcile agent from applying ENVIRONMENT (recorded in its state; it is still planned)."""
    from reconciler.engine.suspension import set_suspended

    m = _manifest()
    (name,) = m.environment_names([environment])
    state, changed = set_suspended(m, name, suspended=True, reason=reason)
    assert state.suspended is not None
    if changed:
        out(f"[yellow]Suspended[/] {name} ({state.suspended.describe()}). The agent plans it but does not apply it; lift it with: vectorops resume {name}")
    else:
        out(f"{name} is already suspended ({state.suspended.describe()}); nothing changed.")


@cli.command()
@global_options
@click.argument("environment")
def resume(environment: str) -> None:
    """Let the reconcile agent apply ENVIRONMENT again."""
    from reconciler.engine.suspension import set_suspended

    m = _manifest()
    (name,) = m.environment_names([environment])
    _state, changed = set_suspended(m, name, suspended=False)
    out(f"[green]Resumed[/] {name}: the agent applies it again at its next cycle." if changed else f"{name} is not suspended; nothing changed.")


@cli.group(invoke_without_command=True)
@click.pass_context
def cache(ctx: click.Context) -> None:
    """This machine's hash cache (VECTOROPS_CACHE_DIR): what it holds, and keeping it to a size.

    \b
    Plans keep each dataset version's hashes there, per shard, so a version is read once per
    machine. It only grows by itself; prune drops the least recently used versions whole, and
    never a shard a kept version still needs.
    """
    if ctx.invoked_subcommand is None:  # like `vectorops` alone: a request for help, not an error
        click.echo(ctx.get_help())


@cache.command("info")
@global_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cache_info(as_json: bool) -> None:
    """What the cache holds, by kind, and the versions plans used, most recent first."""
    from reconciler.engine.cache_pruning import cache_contents
    from reconciler.render.cache import render_cache_info

    info = cache_contents().to_json()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        out(render_cache_info(info))


@cache.command("prune")
@global_options
@click.option("--max-size", default=None, metavar="SIZE", help="Keep the most recently used versions that fit: 500MB, 2GB, 10GiB.")
@click.option("--older-than", default=None, metavar="AGE",
              help="Drop what no plan used for this long: 12h, 30d, 2w [default: 30d when --max-size is not given].")
@click.option("--keep-recent", default="10m", show_default=True, metavar="AGE",
              help="Never drop what was used this recently (a plan may be reading it), whatever the size.")
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cache_prune(max_size: str | None, older_than: str | None, keep_recent: str, dry_run: bool, as_json: bool) -> None:
    """Remove the least recently used versions' hashes (and stale leftovers) from the cache.

    \b
    A version is kept or dropped whole; a shard shared with a kept version stays. Dropping a
    version costs only time: the next plan that needs it hashes its shards again.
    """
    import time

    from reconciler.engine.cache_pruning import prune
    from reconciler.render.cache import render_prune
    from reconciler.units import parse_duration, parse_size

    def age(text: str, flag: str, example: str) -> float:  # `30` alone could mean days: a unit, except for 0
        return parse_duration(text, flag, example=example, bare_seconds=False, zero=True)

    limit = parse_size(max_size, "--max-size") if max_size is not None else None
    older = age(older_than, "--older-than", "30d") if older_than is not None else (None if limit is not None else 30 * 86400.0)
    result = prune(max_size=limit, older_than=older, keep_since=time.time() - age(keep_recent, "--keep-recent", "10m"), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        out(render_prune(result.to_json()))
    if result.failed:
        sys.exit(1)


@cli.command()
@global_options
@click.argument("environments", nargs=-1)
@click.option("--repo", default=".", show_default=True, metavar="URL|.",
              help="Git URL (or path) of the repository to follow, cloned into a folder the agent owns; '.' reads the current checkout as it is.")
@click.option("--branch", default="main", show_default=True, help="The branch to follow (with --repo URL).")
@click.option("--workdir", default=None, metavar="DIR", help="Where the agent keeps its clone (default: under ~/.cache/vectorops/agent).")
@click.option("--interval", default="5m", show_default=True, help="Time between cycles: 30s, 5m, 1h.")
@click.option("--backoff", default="5s", show_default=True, help="First retry delay after a failure; doubles per failure, capped at the interval.")
@click.option("--refresh", type=REFRESH, default=None, help=REFRESH_HELP)
@_sample_size_option
@click.option("--once", is_flag=True, help="Run one cycle and exit (1 if anything failed): for cron jobs and checks.")
@click.option("--listen", default=None, metavar="HOST:PORT", help="Serve GET /metrics and GET /healthz here (port 0: any free port).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="Same as --listen 0.0.0.0:PORT.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, help="json: one object per line on stderr.")
@click.option("--shutdown-grace", type=click.FloatRange(min=0), default=20.0, show_default=True,
              help="Seconds a SIGTERM waits for the write batch in flight before abandoning it.")
@click.option("--cache-max-size", default=None, metavar="SIZE",
              help="After every cycle, prune the hash cache to this size (least recently used versions first): 5GB, 500MB.")
def reconcile(
    environments: tuple[str, ...], repo: str, branch: str, workdir: str | None, interval: str, backoff: str, refresh: str | None, once: bool,
    listen: str | None, metrics_port: int | None, log_format: str, shutdown_grace: float, cache_max_size: str | None,
) -> None:
    """Keep environments in sync with the branch, like Argo CD (SPEC §11): a long-running agent.

    \b
    Each cycle fetches the branch, plans every selected environment, applies those whose manifest
    says sync: {auto: true} (and repairs drift with self_heal: true), and reports the rest.
    Failures are retried with backoff and never stop it; SIGTERM stops it cleanly.
    """
    from reconciler.agent import AgentOptions, run
    from reconciler.units import parse_duration, parse_size

    if listen is not None and metrics_port is not None:
        raise UsageError("--listen and --metrics-port both say where to serve metrics", hint="Give one of them.")
    ctx_settings = click.get_current_context().find_object(Settings) or Settings()
    options = AgentOptions(
        repo=repo, branch=branch, manifest=ctx_settings.manifest, environments=environments,
        interval=parse_duration(interval, "--interval"), backoff=parse_duration(backoff, "--backoff"), refresh=refresh, once=once,
        listen=listen if listen is not None else (f"0.0.0.0:{metrics_port}" if metrics_port is not None else None),
        log_format=log_format, shutdown_grace=shutdown_grace, workdir=workdir, verbose=_verbose(),
        cache_max_size=parse_size(cache_max_size, "--cache-max-size") if cache_max_size is not None else None,
    )
    sys.exit(run(options))


# -- entry point ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure becomes one message and exit 1 (2 stays 'changes present')."""
    args = sys.argv[1:] if argv is None else argv
    try:
        _main(argv)
    finally:
        pruning = sys.modules.get("reconciler.engine.cache_pruning")
        if pruning is not None:  # the versions the command's plans held (none when it planned nothing)
            pruning.release_held_versions()
        if "--no-color" in args or os.environ.get("NO_COLOR"):
            _drop_colorama_reset()


def run() -> None:
    """The ``vectorops`` console script: ``main``, then a quick exit.

    Python's teardown after ``main`` frees every module one object at a time; with LanceDB loaded
    that is ~0.4 s (its generated API client alone ~0.25 s), a fifth of a plan served from the
    cache. So everything a normal exit does that anyone can see is done here (exit hooks: DVC's,
    logging's, multiprocessing's and Ray's, temporary folders; then the streams are flushed) and
    the rest is skipped with ``os._exit``. A thread still running gets the normal exit instead.
    In-process callers (tests, the agent) use ``main``, which returns.
    """
    import atexit
    import threading

    try:
        main()
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):  # what sys.exit does with None and a message
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`vectorops plan | head`): nothing more to say
            stream.flush()
    os._exit(code)


def _drop_colorama_reset() -> None:
    """DVC's logger calls ``colorama.init()``, whose exit hook writes a reset escape (ESC[0m) to a
    terminal: plain output must end without it."""
    import atexit

    initialise = sys.modules.get("colorama.initialise")
    if initialise is not None and hasattr(initialise, "reset_all"):
        atexit.unregister(initialise.reset_all)


def _main(argv: list[str] | None) -> None:
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    if not (sys.argv[1:] if argv is None else argv):  # like git: no arguments is a request for help, not an error
        with click.Context(cli, info_name="vectorops") as ctx:
            click.echo(cli.get_help(ctx))
        sys.exit(0)
    settings = Settings()  # -v is read from here once the command has failed, whatever it was
    try:
        cli.main(args=argv, prog_name="vectorops", standalone_mode=False, obj=settings)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = f"\nRun '{exc.ctx.command_path} --help' for usage." if exc.ctx else ""
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(1)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(1)
    except VectorOpsError as exc:
        from reconciler.redact import printable_lines, redact

        click.echo(printable_lines(redact(f"Error: {exc}")), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted. The next plan reports any apply that was cut off, and the next apply finishes it.", err=True)
        sys.exit(130)
    except Exception as exc:  # an ordinary I/O or network failure, else a bug; the traceback only with -v
        from reconciler.ioerrors import as_io_error
        from reconciler.redact import printable_lines, redact

        if settings.verbose:
            import traceback

            click.echo(printable_lines(redact(traceback.format_exc())), err=True)
        io_error = as_io_error(exc)
        if io_error is not None:
            click.echo(f"Error: {printable_lines(redact(str(io_error)))}", err=True)
            sys.exit(1)
        click.echo(f"Error: unexpected {exc.__class__.__name__}: {printable_lines(redact(str(exc)))}\n  This is a vectorops bug; re-run with -v for details and report it.", err=True)
        sys.exit(1)
