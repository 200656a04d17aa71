"""The results index: a DynamoDB table with one item per upload key and the ``newest`` index (inference/contract.py),
which the classifier writes beside ``results/<key>.json`` and the web app reads. It also offers its alarms and its
part of the dashboard.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks.capability import Capability
from stacks.config import (
    INDEX_EXPIRES_AT, INDEX_KEY, NEWEST_INDEX, NEWEST_PARTITION, NEWEST_SORT, FirewatchConfig,
)  # fmt: skip
from stacks.observability import FIVE_MINUTES, AlarmSpec, DashboardSection, graph


class ResultsIndex(Capability):
    def __init__(self, scope: Construct, *, config: FirewatchConfig) -> None:
        super().__init__(scope)
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self.scope,
            "ResultsTable",
            partition_key=dynamodb.Attribute(name=INDEX_KEY, type=string),
            # On demand: uploads come in bursts, and an idle table costs nothing but storage.
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=INDEX_EXPIRES_AT if config.results_ttl_days else None,
            # Derived data: results/*.json stay the durable artefact, and re-enqueuing the uploads rebuilds the items.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.table.add_global_secondary_index(
            index_name=NEWEST_INDEX,
            partition_key=dynamodb.Attribute(name=NEWEST_PARTITION, type=string),
            sort_key=dynamodb.Attribute(name=NEWEST_SORT, type=string),
            projection_type=dynamodb.ProjectionType.ALL,
        )

    # ---- monitoring ----------------------------------------------------------------------------------------------

    def _throttles(self, name: str, index: str | None = None) -> cw.Metric:
        dimensions = {"TableName": self.table.table_name}
        if index:
            dimensions["GlobalSecondaryIndexName"] = index
        return cw.Metric(
            namespace="AWS/DynamoDB", metric_name=name, dimensions_map=dimensions, statistic="Sum", period=FIVE_MINUTES
        )

    def _all_throttles(self) -> cw.MathExpression:
        return cw.MathExpression(
            expression="FILL(reads, 0) + FILL(writes, 0) + FILL(indexWrites, 0)",
            using_metrics={
                "reads": self._throttles("ReadThrottleEvents"),
                "writes": self._throttles("WriteThrottleEvents"),
                # A throttled index throttles the table's writes too.
                "indexWrites": self._throttles("WriteThrottleEvents", NEWEST_INDEX),
            },
            period=FIVE_MINUTES,
            label="Throttle events",
        )

    def alarm_specs(self) -> list[AlarmSpec]:
        return [
            AlarmSpec(
                "ResultsTableThrottles", self._all_throttles(), 1, 1,
                "The results index throttled reads or writes (on-demand limits: a burst over twice the previous peak)",
            ),
        ]  # fmt: skip

    def dashboard_section(self) -> DashboardSection:
        t = self.table
        return DashboardSection(
            "results index",
            [
                [
                    graph(
                        "Results index: consumed write / read units",
                        [
                            t.metric_consumed_write_capacity_units(statistic="Sum", period=FIVE_MINUTES),
                            t.metric_consumed_read_capacity_units(statistic="Sum", period=FIVE_MINUTES),
                        ],
                    ),
                    graph(
                        "Results index: throttle events",
                        [
                            self._throttles("ReadThrottleEvents"),
                            self._throttles("WriteThrottleEvents"),
                            self._throttles("WriteThrottleEvents", NEWEST_INDEX),
                        ],
                    ),
                    graph(
                        "Results index: PutItem latency (ms)",
                        [t.metric("SuccessfulRequestLatency", dimensions_map={"TableName": t.table_name, "Operation": "PutItem"},
                                  statistic="Average", period=FIVE_MINUTES)],  # fmt: skip
                    ),
                ],
            ],
        )
