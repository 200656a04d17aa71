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


def graph(title: str, left: list[cw.IMetric], width: int = 8) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=left, right=[], width=width, height=6)
