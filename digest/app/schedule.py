"""`digest serve`: APScheduler 3 fires `run_once` on every user's cadence; the HTTP side serves feeds and
the one-click unsubscribe endpoint. The store, not the scheduler, decides what is due, so a missed,
doubled or coalesced firing can never send a digest twice or skip one.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import FrameType

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from digest import config, pipeline
from digest.app import server
from digest.config import cadence

log = logging.getLogger(__name__)

MISFIRE_GRACE_SECONDS = 3600  # APScheduler's default of 1 s silently skips a run that starts late


def make_scheduler(cfg: config.Config, job: Callable[[], object]) -> BackgroundScheduler:
    """A scheduler with one job per distinct cadence in the config plus [server].schedule, not yet started."""
    scheduler = BackgroundScheduler(
        timezone=cadence.zone(cfg.server.timezone),
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS},
    )
    triggers = {f"server:{cfg.server.schedule}": cadence.parse_cron(cfg.server.schedule, cfg.server.timezone)}
    for profile in cfg.profiles():
        triggers.setdefault(f"{profile.cadence}@{profile.send_time}/{profile.timezone}", cadence.trigger_for(profile))
    for job_id, trigger in sorted(triggers.items()):
        scheduler.add_job(job, trigger, id=job_id, name=job_id, replace_existing=True)

    def on_event(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "run for %s missed its time %s; the next run catches up", event.job_id, event.scheduled_run_time
            )
        elif event.code == EVENT_JOB_ERROR:
            log.error("run for %s failed: %s", event.job_id, event.exception)

    scheduler.add_listener(on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_EXECUTED)
    return scheduler


def scheduled_run(
    cfg: config.Config,
    env: Mapping[str, str],
    stop: threading.Event,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> pipeline.RunReport | None:
    """One scheduled firing: a full run that waits for a cron-driven run to finish first; logs one line."""
    log.info("run started")
    report = pipeline.run_once(
        cfg, env, now=clock(), options=pipeline.RunOptions(stop=stop.is_set, wait_for_lock=True), clock=clock
    )
    log.info(
        "run finished: %d dumps, %d new papers, %d sent, %d deferred, %d failed, %d feeds written%s",
        len(report.dumps),
        report.new_papers,
        report.sent,
        report.deferred,
        report.failed,
        len(report.feeds_written),
        f"; errors: {'; '.join(report.errors)}" if report.errors else "",
    )
    return report


def make_http(cfg: config.Config, env: Mapping[str, str]) -> server.HTTPServer:
    """The feeds + unsubscribe HTTP server bound to [server].listen."""
    names = [u.name for u in cfg.users]
    secret = config.secret(cfg, env)

    def unsubscribe(user: str) -> None:
        # No run lock: a one-click POST must answer at once, not after a scheduled run has sent everything.
        # set_subscribed is one BEGIN IMMEDIATE transaction, and a run re-reads unsubscribes before sending.
        pipeline.set_subscribed(cfg.digest.store, user, False, now=datetime.now(UTC))

    return server.make_server(
        cfg.server.listen_address,
        feeds_dir=cfg.feeds.output,
        resolve_token=lambda token: pipeline.user_for_token(token, names, secret),
        unsubscribe=unsubscribe,
        votes=pipeline.vote_desk(cfg, env),
    )


def serve(cfg: config.Config, env: Mapping[str, str], *, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set): scheduler plus HTTP server; the current run finishes first."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s; finishing the current message and stopping", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    http = make_http(cfg, env)
    server.serve_in_thread(http)
    scheduler = make_scheduler(cfg, lambda: scheduled_run(cfg, env, stop))
    scheduler.start()
    host, port = http.server_address[:2]
    log.info(
        "serving feeds and unsubscribe on http://%s:%s/ with %d scheduled jobs", host, port, len(scheduler.get_jobs())
    )
    for job in scheduler.get_jobs():
        log.info("job %s next runs at %s", job.id, job.next_run_time)
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        http.shutdown()
        http.server_close()
        log.info("stopped")
