"""What a capability offers the monitoring stack: its alarms and its section of the dashboard.

Each capability knows its own metrics; the monitoring stack only turns alarm specs into alarms wired to the alarm
topic and lays the sections out one under the other. Every alarm fires at or above its threshold, on
``datapoints_to_alarm == evaluation_periods``, and treats missing data as not breaching (no traffic is no fault).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw

FIVE_MINUTES = Duration.minutes(5)
ONE_MINUTE = Duration.minutes(1)
ONE_HOUR = Duration.hours(1)
# Uploads unlike the photos the model learned from: on photos like its training sources about 5 % of verdicts are
# borderline, and out of fold, on sources it never saw, about a third (32 %). An alarm at 20 % for three hours tells the
# second from the first; an hour of fewer than 20 images says too little to count.
BORDERLINE_ALARM_PERCENT = 20
BORDERLINE_ALARM_HOURS = 3
BORDERLINE_ALARM_MIN_IMAGES = 20
DASHBOARD_WIDTH = 24  # CloudWatch's grid


@dataclass(frozen=True)
class AlarmSpec:
    name: str  # the alarm's construct id in the monitoring stack
    metric: cw.IMetric
    threshold: float
    periods: int  # evaluation periods, all of which must breach
    description: str


@dataclass(frozen=True)
class DashboardSection:
    title: str
    rows: Sequence[Sequence[cw.IWidget]]


class Monitored(Protocol):
    def alarm_specs(self) -> list[AlarmSpec]: ...

    def dashboard_section(self) -> DashboardSection: ...


def borderline_share(classified: cw.IMetric, borderline: cw.IMetric, period: Duration = FIVE_MINUTES,
                     at_least: int = 1) -> cw.MathExpression:
    """The share of classified images whose verdict is borderline, in %, over periods with ``at_least`` images."""
    return cw.MathExpression(
        expression=f"IF(classified >= {at_least}, 100 * FILL(borderline, 0) / classified)",
        using_metrics={"classified": classified, "borderline": borderline},
        label="Borderline verdicts (%)",
        period=period,
    )


def unfamiliar_uploads_alarm(name: str, classified: cw.IMetric, borderline: cw.IMetric, what: str) -> AlarmSpec:
    """An alarm on the hourly borderline share: the model meets photos unlike those it learned from."""
    share = borderline_share(classified, borderline, ONE_HOUR, BORDERLINE_ALARM_MIN_IMAGES)
    return AlarmSpec(
        name, share, BORDERLINE_ALARM_PERCENT, BORDERLINE_ALARM_HOURS,
        f"{BORDERLINE_ALARM_PERCENT}% or more of {what} got a borderline verdict, {BORDERLINE_ALARM_HOURS} hours running "
        f"(hours of {BORDERLINE_ALARM_MIN_IMAGES} images or more; about 5% on photos like the training photos): "
        "uploads unlike what the model learned from. Look at recent borderline photos; add such photos to training",
    )  # fmt: skip


def graph(title: str, left: list[cw.IMetric], width: int = 8) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=left, right=[], width=width, height=6)
