"""The reconcile agent (`vectorops reconcile`, SPEC §11): an index that follows its branch.

    loop.py          the cycle: follow the branch, plan, apply or report, back off on failure
    engine_calls.py  the one module that calls the engine (the same functions as plan/apply)
    gitsync.py       the clone the agent owns, or the current checkout (`--repo .`)
    events.py        what happened, as values; fanned out to the listeners below
    logs.py          one line per event on stderr, text or JSON
    metrics.py       Prometheus metrics from the events
    server.py        GET /metrics and GET /healthz
    notify.py        the optional webhook
    shutdown.py      SIGTERM/SIGINT: stop between batches, release the lock, exit 0

``run`` wires them together; the CLI only parses flags.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import UsageError

__all__ = ["AgentOptions", "run"]


@dataclass
class AgentOptions:
    repo: str  # "." (the current checkout, as it is) or a git URL/path to clone and follow
    branch: str
    manifest: str | None  # -m: inside the repository (default vectorops.yaml; discovered for ".")
    environments: tuple[str, ...]
    interval: float
    backoff: float
    refresh: str | None  # None: each environment's policy.refresh, else ids
    once: bool
    listen: str | None  # HOST:PORT for /metrics and /healthz
    log_format: str  # text | json
    shutdown_grace: float
    workdir: str | None
    verbose: bool = False
    cache_max_size: int | None = None  # bytes (--cache-max-size)


class _LogRecordsAsEvents(logging.Handler):
    """Warnings that libraries (DVC, the SDKs) log become agent events, so `--log-format json`
    stays one JSON object per line."""

    def __init__(self, emit: object) -> None:
        super().__init__(logging.WARNING)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        from reconciler.agent.events import Event
        from reconciler.redact import redact

        level = "error" if record.levelno >= logging.ERROR else "warning"
        self._emit(Event(cycle=0, action="log", result=record.name, level=level, message=redact(record.getMessage())))  # type: ignore[operator]


def _source(options: AgentOptions):  # -> OwnedClone | CurrentCheckout
    from reconciler.agent.gitsync import CurrentCheckout, OwnedClone

    if options.repo == ".":
        from reconciler.manifest import _git_toplevel

        cwd = Path.cwd()
        return CurrentCheckout(_git_toplevel(cwd) or cwd)
    folder = Path(options.workdir) if options.workdir else OwnedClone.default_folder(options.repo, options.branch)
    return OwnedClone(options.repo, options.branch, folder.resolve())


def _manifest_path(options: AgentOptions, root: Path) -> Path:
    if options.repo != ".":
        relative = options.manifest or "vectorops.yaml"
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise UsageError(f"-m {relative}: with --repo URL the manifest is a path inside the repository", hint="Give it relative to the repository's root, e.g. -m deploy/vectorops.yaml.")
        return root / relative
    if options.manifest:
        return Path(options.manifest).resolve()
    from reconciler.errors import ManifestError
    from reconciler.manifest import MANIFEST_NAME, discover_manifest

    found = discover_manifest(Path.cwd())
    if found is None:
        raise ManifestError(f"no {MANIFEST_NAME} in {Path.cwd()} or a folder above it", hint="Run from the repository, or pass -m PATH.")
    return found.resolve()


def run(options: AgentOptions) -> int:
    """Run the agent until SIGTERM/SIGINT (or one cycle with ``once``); returns the exit code."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        from reconciler.errors import VectorOpsError

        raise VectorOpsError(
            "vectorops reconcile needs the prometheus_client package (for GET /metrics), which is not installed",
            hint="Install the agent extra: pip install 'vectorops[agent]'.",
        ) from None
    from reconciler.agent.events import Event, Reporter
    from reconciler.agent.logs import LogWriter
    from reconciler.agent.loop import Agent, LoopSettings
    from reconciler.agent.metrics import AgentMetrics
    from reconciler.agent.notify import Webhook
    from reconciler.agent.server import Health, parse_listen, serve
    from reconciler.agent.shutdown import Shutdown

    source = _source(options)
    manifest = _manifest_path(options, source.root)
    listen = None
    if options.listen is not None:
        try:
            listen = parse_listen(options.listen)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    reporter = Reporter(LogWriter(options.log_format, level="debug" if options.verbose else "info"))
    metrics = AgentMetrics()
    # metrics before the log: whoever reads a log line (a person, a test) then scrapes /metrics sees it counted
    reporter.listeners.insert(0, metrics)
    webhook = Webhook.from_environment({"repo": source.describe, "manifest": str(manifest.relative_to(source.root)) if manifest.is_relative_to(source.root) else manifest.name}, reporter)
    if webhook is not None:
        reporter.listeners.append(webhook)
    health = Health(stale_after=max(900.0, 3 * options.interval))
    shutdown = Shutdown(
        options.shutdown_grace,
        on_request=lambda name: reporter.emit(Event(cycle=agent.cycle, action="stop", result="requested", message=f"{name}: stopping after the write batch in flight")),
    )
    root_logger = logging.getLogger()
    bridge = _LogRecordsAsEvents(reporter.emit)
    root_logger.addHandler(bridge)
    server = None
    if listen is not None:
        server = serve(*listen, metrics.registry, health)
        host, port = str(server.server_address[0]), int(server.server_address[1])
        reporter.emit(Event(cycle=0, action="listen", result="ok", message=f"serving /metrics and /healthz on http://{host}:{port}",
                            details={"address": f"{host}:{port}", "port": port}))
    settings = LoopSettings(manifest=manifest, environments=options.environments, interval=options.interval,
                            backoff=min(options.backoff, options.interval), refresh=options.refresh, once=options.once,
                            cache_max_size=options.cache_max_size)
    agent = Agent(source=source, settings=settings, reporter=reporter, shutdown=shutdown, health=health)
    reporter.emit(Event(cycle=0, action="start", result="ok", message=f"following {source.describe} every {options.interval:g}s",
                        details={"repo": source.describe, "interval_s": options.interval, "environments": list(options.environments) or "all"}))
    shutdown.install()
    try:
        code = agent.run()
    finally:
        shutdown.restore()
        health.stopped = True
        root_logger.removeHandler(bridge)
        if webhook is not None:
            webhook.close()
        if server is not None:
            server.shutdown()
    reporter.emit(Event(cycle=agent.cycle, action="stop", result="ok", message="stopped"))
    return code
