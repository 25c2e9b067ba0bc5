"""The GitHub Action's logic: run one vectorops command, then publish its plan to GitHub.

`action.yml` only wires inputs to environment variables and runs `python -m reconciler.github`.
Everything else happens here, so it can be tested offline against a local fake of the REST API
(the base URL comes from `GITHUB_API_URL`, which also makes it work on GitHub Enterprise Server).

The CLI is driven as a subprocess and trusted only through its contract (SPEC §3–4): exit codes
0/1/2 and the plan JSON on stdout. Apply runs the saved plan file, so what is applied is exactly
what was shown in the log and the summary.

Secrets: the token and every `*_API_KEY` value are masked with `::add-mask::` before anything
else is printed, scrubbed from any text we publish, and the token is not passed to the CLI.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from reconciler.redact import redact
from reconciler.render.markdown import render_plan_markdown

COMMANDS = ("plan", "apply", "drift")
COMMENT_LIMIT = 65_536  # GitHub's limit on an issue comment body, in characters
COMMENT_BUDGET = 64_000  # what we aim for, leaving room for the marker and footer
SUMMARY_LIMIT = 1_048_576  # $GITHUB_STEP_SUMMARY: 1 MiB per step, in bytes
STDERR_TAIL = 40  # lines of the CLI's error output quoted in the summary when it fails


class ActionError(Exception):
    """A misconfiguration or a GitHub failure the workflow author must fix; the message says how."""


@dataclass(frozen=True)
class Config:
    """What action.yml passes in, plus what GitHub sets for every step."""

    command: str
    manifest: str
    environments: list[str]
    args: list[str]
    comment: bool
    fail_on_drift: bool
    token: str | None
    api_url: str
    repository: str | None
    event_name: str | None
    event_path: str | None
    step_summary: Path | None
    output: Path | None
    runner_temp: Path
    cache_max_size: str | None = None  # input `cache-max-size` when `cache` is on: prune the hash cache after the command
    secrets: list[str] = field(default_factory=list, repr=False)
    environ: dict[str, str] = field(default_factory=dict, repr=False)  # what the CLI runs with

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Read and check the configuration; a bad value raises ActionError naming the input."""
        command = env.get("VECTOROPS_COMMAND", "plan").strip() or "plan"
        if command not in COMMANDS:
            raise ActionError(f"input `command` is {command!r}; use one of: {', '.join(COMMANDS)}")
        comment = _boolean_input(env, "VECTOROPS_COMMENT", "comment")
        fail_on_drift = _boolean_input(env, "VECTOROPS_FAIL_ON_DRIFT", "fail-on-drift")
        try:
            args = shlex.split(env.get("VECTOROPS_ARGS", ""))
        except ValueError as exc:
            raise ActionError(f"input `args` cannot be split like a shell command line: {exc}") from None
        token = env.get("GITHUB_TOKEN") or None
        named = _key_variables(env.get("VECTOROPS_MANIFEST", "").strip() or "vectorops.yaml")
        secrets = [
            v for k, v in env.items() if v and (k == "GITHUB_TOKEN" or k.upper().endswith("_API_KEY") or k in named)
        ]
        temp = env.get("RUNNER_TEMP") or os.path.join(os.getcwd(), ".vectorops-action")
        return cls(
            command=command,
            manifest=env.get("VECTOROPS_MANIFEST", "").strip() or "vectorops.yaml",
            environments=env.get("VECTOROPS_ENVIRONMENTS", "").split(),
            args=args,
            comment=comment,
            fail_on_drift=fail_on_drift,
            token=token,
            api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
            repository=env.get("GITHUB_REPOSITORY") or None,
            event_name=env.get("GITHUB_EVENT_NAME") or None,
            event_path=env.get("GITHUB_EVENT_PATH") or None,
            step_summary=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            output=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            runner_temp=Path(temp),
            cache_max_size=env.get("VECTOROPS_CACHE_MAX_SIZE", "").strip() or None,
            secrets=sorted(set(secrets), key=len, reverse=True),
            environ=dict(env),
        )

    @property
    def plan_file(self) -> Path:
        return self.runner_temp / "vectorops.plan"

    @property
    def json_file(self) -> Path:
        return self.runner_temp / ("vectorops-drift.json" if self.command == "drift" else "vectorops-plan.json")


@dataclass
class Outcome:
    """What running the CLI produced, the input of `publish`."""

    plan: dict[str, Any] | None
    exitcode: int
    applied: bool | None = None  # apply only: whether `apply PLANFILE` succeeded
    error: str | None = None  # the end of the CLI's error output when it failed


def _boolean_input(env: Mapping[str, str], variable: str, name: str) -> bool:
    """A true/false input; empty means its default, true (as action.yml declares for every one)."""
    raw = env.get(variable, "true").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ActionError(f"input `{name}` is {raw!r}; use true or false")
    return raw in ("true", "1", "yes", "")


def _key_variables(manifest: str) -> set[str]:
    """The variables the manifest's destinations name as holding secrets (Pinecone's ``api_key_env``,
    any type's ``secret_env_fields``, defaults included), whatever they are called.

    Read with the manifest's own YAML reader but not validated: secrets must be masked even when the
    manifest is invalid and the CLI is about to say so."""
    from reconciler.manifest import parse_yaml_with_positions, read_bounded_text
    from reconciler.providers import registry

    try:  # bounded like every manifest read: a pull request can make it a YAML bomb
        doc, _ = parse_yaml_with_positions(read_bounded_text(Path(manifest), manifest), manifest)
        envs = doc.get("environments") if isinstance(doc, dict) else None
        destinations = [e["destination"] for e in (envs or {}).values() if isinstance(e, dict) and isinstance(e.get("destination"), dict)]
        found: set[str] = set()
        for dest in destinations:
            types, _unknown = registry.resolve([dest["type"]] if isinstance(dest.get("type"), str) else [])
            for model in types:
                if model.type_name() == dest.get("type"):
                    found.update(model.secret_variables_in(dest))
        return found
    except Exception:  # an unreadable manifest is the CLI's to report; masking falls back to names
        return set()


# -- entry point ---------------------------------------------------------------------------------


def main(env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    """Run the action; returns the step's exit code.

    plan's "2 = changes" is success (0); drift's "2 = drift found" fails the step (1) unless
    `fail-on-drift` is false, because a scheduled drift check exists to tell someone.
    """
    env = os.environ if env is None else env
    out = out or sys.stdout
    try:
        cfg = Config.from_env(env)
    except ActionError as exc:
        print(workflow_command("error", str(exc), title="vectorops"), file=out, flush=True)
        return 1
    mask_secrets(cfg, out)
    warn_about_runner_disk(cfg, out)
    cfg.runner_temp.mkdir(parents=True, exist_ok=True)
    outside = manifest_outside_workspace(cfg.manifest, os.getcwd())
    started = time.monotonic()
    outcome = Outcome(None, 1, error=outside) if outside else run(cfg, out)
    if cfg.cache_max_size is not None and not outside:
        prune_hash_cache(cfg, out, since_s=time.monotonic() - started)
    return publish(outcome.plan, outcome.exitcode, cfg, out=out, applied=outcome.applied, error=outcome.error)


def manifest_outside_workspace(manifest: str, workspace: str) -> str | None:
    """Why the manifest may not be read, or None: it must resolve (symlinks too) inside the checkout
    (the git repository of the step's working directory, else that directory).

    A pull request can replace ``vectorops.yaml`` with a symlink to any file of the runner, whose
    content errors about the manifest would then quote into the PR comment.
    """
    from reconciler.manifest import _git_toplevel

    real = Path(os.path.realpath(Path(workspace) / manifest))
    root = _git_toplevel(Path(workspace)) or Path(os.path.realpath(workspace))
    if real == root or root in real.parents:
        return None
    return (
        f"the manifest {manifest} resolves to {real}, outside the workspace {root}; "
        "vectorops reads only a manifest inside the checked-out repository (is it a symlink?)"
    )


def mask_secrets(cfg: Config, out: TextIO) -> None:
    """Tell the runner to mask every secret, line by line, before anything else is printed."""
    for secret in cfg.secrets:
        for line in secret.splitlines():
            if line.strip():
                print(f"::add-mask::{line}", file=out)
    out.flush()


def warn_about_runner_disk(cfg: Config, out: TextIO) -> None:
    """Warn for every LanceDB destination whose files would vanish with the runner.

    A GitHub-hosted runner is a fresh VM per job, and `actions/checkout` cleans the workspace on a
    self-hosted one: a table (with vectorops' state and history) kept on that disk is gone by the
    next run, which then plans everything from scratch, and no laptop can see what CI applied.
    """
    for name, uri, where in runner_disk_destinations(cfg):
        message = (
            f"environment '{name}' keeps its LanceDB table at the local path {uri} ({where}), so the table "
            "and vectorops' state and history there vanish after this job: the next run starts from nothing "
            "and no other machine sees what was applied. Use object storage (s3://, gs://, az://) or "
            "LanceDB Cloud (db://) as the uri, or a self-hosted runner with a folder outside the workspace."
        )
        title = "vectorops LanceDB table on the runner disk"
        print(workflow_command("warning", redact(message, extra=cfg.secrets), title=title), file=out, flush=True)


def runner_disk_destinations(cfg: Config) -> list[tuple[str, str, str]]:
    """(environment, uri, why it is ephemeral) for the selected LanceDB environments on this runner's disk."""
    from reconciler.manifest import parse_yaml_with_positions, read_bounded_text

    hosted = cfg.environ.get("RUNNER_ENVIRONMENT", "").strip().lower() == "github-hosted"
    workspace = cfg.environ.get("GITHUB_WORKSPACE", "").strip()
    manifest = Path(cfg.manifest)
    try:  # bounded like every manifest read: a pull request can make it a YAML bomb
        doc, _ = parse_yaml_with_positions(read_bounded_text(manifest, cfg.manifest), cfg.manifest)
        envs = (doc.get("environments") if isinstance(doc, dict) else None) or {}
    except Exception:  # noqa: BLE001 - an unreadable manifest is the CLI's to report
        return []
    found = []
    for name, env in envs.items() if isinstance(envs, dict) else ():
        if cfg.environments and name not in cfg.environments:
            continue
        dest = env.get("destination") if isinstance(env, dict) else None
        if not isinstance(dest, dict) or dest.get("type") != "lancedb":
            continue
        uri = str(dest.get("uri") or ".vectorops/lancedb")
        if re.match(r"^[a-z][a-z0-9+.-]*://", uri, re.IGNORECASE) and not uri.lower().startswith("file://"):
            continue  # object storage or LanceDB Cloud: outlives the runner
        local = Path(os.path.expanduser(uri.removeprefix("file://")))
        local = (local if local.is_absolute() else manifest.resolve().parent / local).resolve()
        if hosted:
            found.append((str(name), uri, "a GitHub-hosted runner is discarded after the job"))
        elif workspace and local.is_relative_to(Path(workspace).resolve()):
            found.append((str(name), uri, "inside the workspace, which actions/checkout cleans on the next run"))
    return found


# -- running the CLI -----------------------------------------------------------------------------


def run(cfg: Config, out: TextIO) -> Outcome:
    """Run the configured command through the CLI and collect its JSON and exit code."""
    if cfg.command == "drift":
        return _run_json(cfg, ["drift", *cfg.environments, "--json", *cfg.args], out)

    planned = _run_json(
        cfg,
        ["plan", *cfg.environments, "--json", "-o", str(cfg.plan_file), "--detailed-exitcode", *cfg.args],
        out,
    )
    if planned.plan is None or planned.exitcode not in (0, 2):
        return planned
    if cfg.command == "plan":
        _stream(cfg, ["show", str(cfg.plan_file)], out)  # the human plan, for the log
        return planned
    print("Applying the saved plan: exactly what is shown above and in the summary.", file=out, flush=True)
    rc = _stream(cfg, ["apply", str(cfg.plan_file)], out)
    return Outcome(planned.plan, rc, applied=rc == 0, error=None if rc == 0 else "apply failed; see the log")


def prune_hash_cache(cfg: Config, out: TextIO, since_s: float) -> None:
    """Keep the hash cache that actions/cache saves after this job to `cache-max-size`: the least
    recently used versions go, never what this run used (it is the next run's warm start). It only
    grows by itself (~0.8 GB a version at 10M records), and a repository's Actions caches share 10 GB.
    A failure is a warning: the command's outcome stands."""
    keep = f"{int(since_s) + 60}s"
    rc = _stream(cfg, ["cache", "prune", "--max-size", cfg.cache_max_size or "", "--keep-recent", keep], out)
    if rc != 0:
        message = f"pruning the hash cache to {cfg.cache_max_size} failed (exit {rc}); the cache saved after this job may be larger"
        print(workflow_command("warning", message, title="vectorops cache"), file=out, flush=True)


def cli_argv(cfg: Config, args: list[str]) -> list[str]:
    """The command line for the CLI: this interpreter, so it is the vectorops the action installed."""
    return [sys.executable, "-m", "reconciler", "-m", cfg.manifest, *args]


def _child_env(cfg: Config) -> dict[str, str]:
    """The CLI gets the job's environment (DVC and destination credentials) but not the token."""
    env = {k: v for k, v in cfg.environ.items() if k != "GITHUB_TOKEN"}
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def _run_json(cfg: Config, args: list[str], out: TextIO) -> Outcome:
    """Run a CLI command whose stdout is JSON; its stderr goes to the log and is kept for errors."""
    argv = cli_argv(cfg, args)
    print(f"$ vectorops -m {shlex.quote(cfg.manifest)} {shlex.join(args)}", file=out, flush=True)
    stdout_path = cfg.runner_temp / f"vectorops-{cfg.command}.stdout"
    tail: deque[str] = deque(maxlen=STDERR_TAIL)
    with _no_workflow_commands(out), open(stdout_path, "w+b") as so:
        try:
            proc = subprocess.Popen(argv, stdout=so, stderr=subprocess.PIPE, env=_child_env(cfg), text=True)
        except OSError as exc:
            return Outcome(None, 1, error=f"could not start the vectorops CLI: {exc}")
        with proc:
            assert proc.stderr is not None
            for line in proc.stderr:
                out.write(line)
                tail.append(line.rstrip("\n"))
            out.flush()
        rc = proc.wait()
        so.seek(0)
        raw = so.read().decode("utf-8", "replace")
    stdout_path.unlink(missing_ok=True)
    error = redact("\n".join(tail), extra=cfg.secrets) or None
    if rc not in (0, 2):
        return Outcome(None, rc, error=error or f"vectorops exited with code {rc}")
    try:
        plan = json.loads(raw)
    except json.JSONDecodeError:
        return Outcome(None, 1, error=f"vectorops {args[0]} --json printed something that is not JSON")
    if not isinstance(plan, dict):
        return Outcome(None, 1, error=f"vectorops {args[0]} --json printed JSON that is not an object")
    return Outcome(plan, rc, error=None)


def _stream(cfg: Config, args: list[str], out: TextIO) -> int:
    """Run a CLI command with its human output going straight to the log."""
    print(f"$ vectorops -m {shlex.quote(cfg.manifest)} {shlex.join(args)}", file=out, flush=True)
    with _no_workflow_commands(out):
        try:
            proc = subprocess.Popen(
                cli_argv(cfg, args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_child_env(cfg), text=True
            )
        except OSError as exc:
            out.write(f"could not start the vectorops CLI: {exc}\n")
            return 1
        with proc:
            assert proc.stdout is not None
            out.writelines(proc.stdout)
            out.flush()
        return proc.wait()


class _no_workflow_commands:
    """Wrap output we do not control in `::stop-commands::` so ids cannot inject `::set-output`."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.token = out, uuid.uuid4().hex

    def __enter__(self) -> None:
        print(f"::stop-commands::{self.token}", file=self.out, flush=True)

    def __exit__(self, *exc: object) -> None:
        print(f"::{self.token}::", file=self.out, flush=True)


# -- publishing ----------------------------------------------------------------------------------


def publish(
    plan: dict[str, Any] | None,
    exitcode: int,
    cfg: Config,
    *,
    out: TextIO | None = None,
    applied: bool | None = None,
    error: str | None = None,
) -> int:
    """Write the plan JSON, job summary, step outputs and the PR comment; return the step's code.

    This is the seam the tests drive: it needs only the CLI's JSON and exit code.
    """
    out = out or sys.stdout
    cfg.runner_temp.mkdir(parents=True, exist_ok=True)
    json_path = ""
    if plan is not None:
        # Scrub secrets from the data, not the Markdown: escaping would hide them from redact().
        text = redact(json.dumps(plan, indent=2), extra=cfg.secrets)
        plan = json.loads(text)
        cfg.json_file.write_text(text + "\n", encoding="utf-8")
        json_path = str(cfg.json_file)

    # exit 2 (plan --detailed-exitcode, drift) means changes or drift, and so does the output
    has_changes = plan is not None and (bool(plan.get("has_changes")) or bool(plan.get("has_drift")) or exitcode == 2)
    write_summary(cfg, summary_markdown(cfg, plan, exitcode, applied=applied, error=error))
    set_outputs(cfg, {"has-changes": "true" if has_changes else "false", "exitcode": str(exitcode), "plan-json": json_path})

    step_rc = 0 if exitcode in (0, 2) and cfg.command in ("plan", "drift") else exitcode
    if plan is None and step_rc == 0:
        step_rc = 1
    drift_fails = cfg.command == "drift" and exitcode == 2 and plan is not None and cfg.fail_on_drift
    if drift_fails:
        step_rc = 1
    try:
        url = post_comment(cfg, render_report(cfg, plan, exitcode, applied=applied, error=error, limit=COMMENT_BUDGET))
    except ActionError as exc:
        print(workflow_command("error", redact(str(exc), extra=cfg.secrets), title="vectorops: PR comment failed"), file=out, flush=True)
        return step_rc or 1
    if url:
        print(f"Posted to the pull request: {url}", file=out, flush=True)
    if error and step_rc:
        last = "\n".join(error.splitlines()[-5:])  # the full output is just above in the log
        print(workflow_command("error", redact(last, extra=cfg.secrets), title=f"vectorops {cfg.command} failed"), file=out, flush=True)
    if drift_fails:
        print(workflow_command("error", _drift_message(plan), title="vectorops found drift"), file=out, flush=True)
    return step_rc


def _drift_message(plan: dict[str, Any] | None) -> str:
    """Which environments drifted, and what to do: the step fails so someone is told (fail-on-drift)."""
    names = [str(e.get("name")) for e in (plan or {}).get("environments") or [] if e.get("has_drift") is True]
    where = f" in {', '.join(names)}" if names else ""
    return (
        f"drift found{where}: the destination differs from what vectorops last applied (details in the job "
        "summary). Run `vectorops plan` to see the repair and `vectorops apply` to make it; set the input "
        "`fail-on-drift: false` to report drift without failing the step."
    )


def render_report(
    cfg: Config,
    plan: dict[str, Any] | None,
    exitcode: int,
    *,
    applied: bool | None,
    error: str | None,
    limit: int | None,
) -> str:
    """The Markdown for the summary (limit None) or the PR comment (limit in characters)."""
    title = f"vectorops {cfg.command} — {cfg.manifest}"
    if cfg.environments:
        title += f" ({' '.join(cfg.environments)})"
    status = _status_line(cfg, plan, exitcode, applied, error)
    budget = None if limit is None else max(0, limit - len(status) - 2)
    if plan is None:
        body = f"### {html.escape(title)}\n"
    else:
        body = render_plan_markdown(
            plan,
            title=title,
            max_chars=budget,
            cut_pointer=(
                "the full plan, with every sample id, is in this run's job summary"
                if limit == COMMENT_BUDGET
                else "the full plan is in the file named by the `plan-json` output"
            ),
        )
    head, _, rest = body.partition("\n")
    text = f"{head}\n\n{status}\n{rest}" if status else body
    return redact(text, extra=cfg.secrets)


def summary_markdown(
    cfg: Config, plan: dict[str, Any] | None, exitcode: int, *, applied: bool | None, error: str | None
) -> str:
    """The job summary: everything, unless it is over the 1 MiB cap; then whole details are dropped."""
    text = render_report(cfg, plan, exitcode, applied=applied, error=error, limit=None)
    budget = SUMMARY_LIMIT - 4096
    size = len(text.encode("utf-8"))
    while size > budget and len(text) > 1000:
        chars = int(len(text) * budget / size * 0.95)  # bytes per character vary: aim low, then check
        text = render_report(cfg, plan, exitcode, applied=applied, error=error, limit=chars)
        size = len(text.encode("utf-8"))
    return text


def _status_line(cfg: Config, plan: dict[str, Any] | None, exitcode: int, applied: bool | None, error: str | None) -> str:
    if plan is None:
        tail = "\n".join((error or "").splitlines()[-STDERR_TAIL:])
        block = f"\n\n```text\n{tail.replace('```', 'ʼʼʼ')}\n```" if tail else ""
        return f":x: **vectorops {cfg.command} failed** (exit code {exitcode}); see the run's log.{block}"
    if cfg.command == "apply":
        if applied:
            return ":white_check_mark: **Applied** the plan below."
        return f":x: **Apply failed** (exit code {exitcode}); nothing was applied past the point shown in the log."
    return ""


def write_summary(cfg: Config, markdown: str) -> None:
    """Append to $GITHUB_STEP_SUMMARY, cut to the runner's 1 MiB per step (bytes, not chars)."""
    if cfg.step_summary is None:
        return
    data = markdown.encode("utf-8")
    if len(data) > SUMMARY_LIMIT - 1024:
        note = "\n\n_Summary cut at GitHub's 1 MiB limit; the full plan is in the `plan-json` output file._\n"
        data = data[: SUMMARY_LIMIT - 1024 - len(note.encode())].decode("utf-8", "ignore").encode() + note.encode()
    with cfg.step_summary.open("ab") as f:
        f.write(data)


def set_outputs(cfg: Config, values: Mapping[str, str]) -> None:
    """Write step outputs with a random heredoc delimiter, so no value can end it early."""
    if cfg.output is None:
        return
    with cfg.output.open("a", encoding="utf-8") as f:
        for name, value in values.items():
            delim = f"ghadelimiter_{uuid.uuid4().hex}"
            while delim in value:
                delim = f"ghadelimiter_{uuid.uuid4().hex}"
            f.write(f"{name}<<{delim}\n{value}\n{delim}\n")


# -- the sticky PR comment -----------------------------------------------------------------------


def comment_marker(manifest: str) -> str:
    """The hidden first line that identifies this manifest's comment (made safe for an HTML comment)."""
    safe = manifest.replace("--", "-\u2010").replace(">", "%3E").replace("\n", " ")
    return f"<!-- vectorops:plan manifest={safe} -->"


def pull_request_number(cfg: Config) -> int | None:
    """The PR number from the event payload, or None when this run is not for a pull request."""
    if cfg.event_name not in ("pull_request", "pull_request_target") or not cfg.event_path:
        return None
    try:
        event = json.loads(Path(cfg.event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ActionError(f"cannot read the event payload GITHUB_EVENT_PATH={cfg.event_path}: {exc}") from None
    number = (event.get("pull_request") or {}).get("number") or event.get("number")
    return int(number) if number else None


def post_comment(cfg: Config, markdown: str) -> str | None:
    """Create or update the one sticky comment for this manifest; returns its URL (None: skipped)."""
    if not cfg.comment:
        return None
    number = pull_request_number(cfg)
    if number is None:
        return None
    if not cfg.token:
        raise ActionError("input `github-token` is empty; pass `github-token: ${{ github.token }}` or set `comment: false`")
    if not cfg.repository:
        raise ActionError("GITHUB_REPOSITORY is not set; it names the repository to comment on")
    marker = comment_marker(cfg.manifest)
    body = f"{marker}\n{markdown}"
    if len(body) > COMMENT_LIMIT:  # the renderer keeps within budget; this is only a last guard
        body = body[: COMMENT_LIMIT - 1] + "…"
    api = GitHubAPI(cfg.api_url, cfg.token)
    try:
        existing = api.find_issue_comment(cfg.repository, number, lambda b: b.startswith(marker))
        if existing is None:
            made = api.create_issue_comment(cfg.repository, number, body)
        else:
            made = api.update_issue_comment(cfg.repository, int(existing["id"]), body)
    except GitHubAPIError as exc:
        raise ActionError(_explain(exc, cfg, number)) from None
    return str(made.get("html_url") or made.get("url") or "")


def _explain(exc: GitHubAPIError, cfg: Config, number: int) -> str:
    where = f"pull request #{number} in {cfg.repository}"
    if exc.status == 401:
        return f"GitHub rejected the token (401 Bad credentials) while commenting on {where}; check the `github-token` input."
    if exc.status in (403, 404):
        return (
            f"GitHub refused to let this token comment on {where} ({exc.status}: {exc.reason}). "
            "The workflow needs `permissions: pull-requests: write` (add it to the job or workflow). "
            "Pull requests from forks get a read-only token: set `comment: false` for them, or read the plan "
            "in the job summary."
        )
    return f"commenting on {where} failed: {exc}"


_MESSAGE_ESCAPES = {"%": "%25", "\r": "%0D", "\n": "%0A"}
_PROPERTY_ESCAPES = {**_MESSAGE_ESCAPES, ":": "%3A", ",": "%2C"}


def workflow_command(command: str, message: str, **properties: str) -> str:
    """``::command key=value,...::message`` escaped as the runner's parser expects.

    The message escapes %, CR and LF; property values also escape ':' and ',', which otherwise end
    the properties or split them (a title "vectorops: x" would be cut at its colon).
    """
    props = ",".join(f"{key}={_escape(value, _PROPERTY_ESCAPES)}" for key, value in properties.items())
    return f"::{command}{' ' + props if props else ''}::{_escape(message, _MESSAGE_ESCAPES)}"


def _escape(text: str, table: dict[str, str]) -> str:
    return re.sub("[" + re.escape("".join(table)) + "]", lambda m: table[m.group()], text)

# -- a minimal GitHub REST client (stdlib only) ----------------------------------------------------


class GitHubAPIError(Exception):
    """A non-2xx answer from the REST API. Carries status and GitHub's message, never the token."""

    def __init__(self, status: int, reason: str, method: str, url: str) -> None:
        super().__init__(f"{method} {url} answered {status}: {reason}")
        self.status, self.reason = status, reason


class GitHubAPI:
    """Just the issue-comment calls the action needs, following `Link: rel="next"` for listings."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the token, even in a traceback's locals
        return f"GitHubAPI({self.base!r})"

    def find_issue_comment(self, repo: str, number: int, match: Callable[[str], bool]) -> dict[str, Any] | None:
        """The first comment (oldest first) on issue/PR ``number`` whose body matches, over all pages."""
        url: str | None = f"{self.base}/repos/{repo}/issues/{number}/comments?per_page=100"
        while url:
            page, headers = self._request("GET", url)
            for c in page if isinstance(page, list) else []:
                if isinstance(c, dict) and match(str(c.get("body") or "")):
                    return c
            url = _next_link(headers.get("Link", ""))
            if url and not url.startswith(self.base + "/"):
                raise GitHubAPIError(0, f"pagination left the API base URL ({url})", "GET", url)
        return None

    def create_issue_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        made, _ = self._request("POST", f"{self.base}/repos/{repo}/issues/{number}/comments", {"body": body})
        return made if isinstance(made, dict) else {}

    def update_issue_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        made, _ = self._request("PATCH", f"{self.base}/repos/{repo}/issues/comments/{comment_id}", {"body": body})
        return made if isinstance(made, dict) else {}

    def _request(self, method: str, url: str, payload: Any = None) -> tuple[Any, Mapping[str, str]]:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        req.add_header("Accept", "application/vnd.github+json")
        req.add_header("X-GitHub-Api-Version", "2022-11-28")
        req.add_header("User-Agent", "vectorops-action")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for attempt in range(3):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return (json.loads(raw) if raw else None), dict(resp.headers.items())
            except urllib.error.HTTPError as exc:
                reason = _github_message(exc)
                if exc.code in (500, 502, 503, 504) and attempt < 2:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise GitHubAPIError(exc.code, reason, method, url) from None
            except (urllib.error.URLError, OSError) as exc:
                if attempt < 2:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise GitHubAPIError(0, f"cannot reach the GitHub API: {exc}", method, url) from None
        raise AssertionError("unreachable")


def _github_message(exc: urllib.error.HTTPError) -> str:
    """GitHub's own explanation from the error body (e.g. "Resource not accessible by integration")."""
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    msg = str(body.get("message") or exc.reason or "error") if isinstance(body, dict) else str(exc.reason)
    details = [str(e.get("message")) for e in body.get("errors") or [] if isinstance(e, dict) and e.get("message")] if isinstance(body, dict) else []
    return msg + (f" ({'; '.join(details)})" if details else "")


def _next_link(link_header: str) -> str | None:
    """The URL with rel="next" in an RFC 8288 Link header, or None on the last page."""
    for part in link_header.split(","):
        m = re.match(r'\s*<([^>]+)>\s*;(.*)', part)
        if m and re.search(r'rel="?([^";]*\s)?next(\s[^";]*)?"?', m.group(2)):
            return m.group(1)
    return None


if __name__ == "__main__":
    sys.exit(main())
