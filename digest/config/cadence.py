"""When a user's digest is due: the digest period a moment falls in, for daily, weekly and cron cadences.

A period is named by the local wall-clock time of its scheduled occurrence, so the two firings of a 02:30
job on the day clocks go back (or a restart in between) name the same period and yield one digest.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from digest.errors import ConfigError
from digest.models import Profile

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Period:
    """One digest period: its stable name and the local time it was scheduled for."""

    key: str
    scheduled_at: datetime


def zone(name: str) -> ZoneInfo:
    """The IANA time zone, or a ConfigError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, UnicodeError) as exc:
        # A folder of the tz database ("Europe") raises IsADirectoryError, a path ("../x") ValueError.
        raise ConfigError(f"unknown time zone {name!r}", "use an IANA name such as 'Europe/Berlin' or 'UTC'") from exc


def parse_cron(expr: str, tz: str = "UTC") -> CronTrigger:
    """A 5-field crontab expression as an APScheduler trigger; ValueError says what is wrong."""
    return CronTrigger.from_crontab(expr, timezone=zone(tz))


# Crontab fields have no year, so a cron that fires at all fires again within one 400-year Gregorian cycle; the
# longest gap of a real one is about 40 years ("0 0 29 2 mon": 29 February falling on a Monday, with 2100 not a
# leap year). Looking back one cycle finds the last firing of any cron that fires at all.
_LOOKBACK = timedelta(days=400 * 366)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=256)
def cron_fires(expr: str) -> bool:
    """Whether the crontab expression ``expr`` matches any date at all ("0 0 31 2 *" never does)."""
    return parse_cron(expr).get_next_fire_time(None, _EPOCH) is not None


def _send_time(profile: Profile) -> time:
    hour, minute = (int(part) for part in profile.send_time.split(":"))
    return time(hour, minute)


def trigger_for(profile: Profile) -> CronTrigger:
    """The APScheduler trigger that fires when this user's digest is due."""
    tz = zone(profile.timezone)
    if profile.cadence.startswith("cron:"):
        return CronTrigger.from_crontab(profile.cadence[5:], timezone=tz)
    at = _send_time(profile)
    if profile.cadence.startswith("weekly"):
        weekday = profile.cadence.partition(":")[2] or "mon"
        return CronTrigger(day_of_week=weekday, hour=at.hour, minute=at.minute, timezone=tz)
    return CronTrigger(hour=at.hour, minute=at.minute, timezone=tz)


def _last_cron_fire(trigger: CronTrigger, now: datetime) -> datetime:
    window = timedelta(hours=1)
    while window < 2 * _LOOKBACK:
        fire = trigger.get_next_fire_time(None, now - min(window, _LOOKBACK))
        if fire is not None and fire <= now:
            start = fire + timedelta(seconds=1)
            while True:
                following = trigger.get_next_fire_time(None, start)
                if following is None or following > now:
                    return fire
                if following <= fire:
                    # APScheduler 3 can step back across a DST fall-back; move on rather than loop forever.
                    start += timedelta(hours=1)
                    continue
                fire, start = following, following + timedelta(seconds=1)
        window *= 2
    raise ConfigError(f"the cron expression {trigger} never fires", "check its day and month fields")


def current_period(profile: Profile, now: datetime) -> Period:
    """The most recent period whose scheduled time is at or before ``now`` for this user."""
    tz = zone(profile.timezone)
    local = now.astimezone(tz)
    if profile.cadence.startswith("cron:"):
        fire = _last_cron_fire(trigger_for(profile), now).astimezone(tz)
        return Period(fire.strftime("%Y-%m-%dT%H:%M"), fire)
    at = _send_time(profile)
    day = local.date()
    if profile.cadence.startswith("weekly"):
        weekday = WEEKDAYS.index(profile.cadence.partition(":")[2] or "mon")
        day -= timedelta(days=(day.weekday() - weekday) % 7)
        step = timedelta(days=7)
    else:
        step = timedelta(days=1)
    scheduled = datetime.combine(day, at, tzinfo=tz)
    if scheduled.replace(tzinfo=None) > local.replace(tzinfo=None):
        day -= step
        scheduled = datetime.combine(day, at, tzinfo=tz)
    if profile.cadence.startswith("weekly"):
        year, week, _ = day.isocalendar()
        return Period(f"{year}-W{week:02d}", scheduled)
    return Period(day.isoformat(), scheduled)


def next_scheduled_after(profile: Profile, moment: datetime) -> datetime:
    """The first scheduled time of this user's cadence strictly after ``moment`` (the end of the period that
    follows a digest scheduled at ``moment``)."""
    fire = trigger_for(profile).get_next_fire_time(None, moment + timedelta(seconds=1))
    if fire is None:
        raise ConfigError(f"the cadence of user {profile.name!r} never fires again", "check its cadence")
    return fire
