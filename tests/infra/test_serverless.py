"""The serverless stack: upload bucket, upload queue and its dead-letter queue, classifier function and its event
source mapping, results index, IAM, the function's own dead-letter queue, alert topic."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from tests.infra.conftest import only, resources


def _bucket_ids(synth):
    buckets = resources(synth.serverless, "AWS::S3::Bucket")
    uploads = [k for k, v in buckets.items() if "LoggingConfiguration" in v["Properties"]]
    logs = [k for k in buckets if k not in uploads]
    assert len(uploads) == 1 and len(logs) == 1, sorted(buckets)
    return uploads[0], logs[0]


def _classifier(template) -> tuple[str, dict]:
    """The container-image function (the other Function is the CDK's bucket-notification handler)."""
    found = template.find_resources("AWS::Lambda::Function", {"Properties": {"PackageType": "Image"}})
    assert len(found) == 1, sorted(found)
    logical_id, resource = next(iter(found.items()))
    return logical_id, resource["Properties"]


def _policy_statements(template, role_prefix: str) -> list[dict]:
    policies = [
        p["Properties"]
        for p in resources(template, "AWS::IAM::Policy").values()
        if any(r["Ref"].startswith(role_prefix) for r in p["Properties"]["Roles"])
    ]
    assert len(policies) == 1, policies
    return policies[0]["PolicyDocument"]["Statement"]


def _queues(template) -> dict[str, str]:
    """The three queues by role: the upload queue (it has a redrive policy), its dead-letter queue, and the function's
    own dead-letter queue for asynchronous invocations."""
    queues = resources(template, "AWS::SQS::Queue")
    [upload] = [k for k, v in queues.items() if "RedrivePolicy" in v["Properties"]]
    dead_letters = queues[upload]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    [failed_events] = [k for k in queues if k not in (upload, dead_letters)]
    return {"upload": upload, "upload_dead_letters": dead_letters, "failed_events": failed_events}


def _table(template) -> tuple[str, dict]:
    found = resources(template, "AWS::DynamoDB::Table")
    assert len(found) == 1, sorted(found)
    logical_id, resource = next(iter(found.items()))
    return logical_id, resource


def _actions(statement: dict) -> list[str]:
    actions = statement["Action"]
    return sorted([actions] if isinstance(actions, str) else actions)


def test_upload_bucket_is_private_encrypted_versioned_logged_and_expires_old_versions(synth):
    uploads, logs = _bucket_ids(synth)
    props = resources(synth.serverless, "AWS::S3::Bucket")[uploads]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }  # fmt: skip
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs}
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    # Data survives `cdk destroy`.
    assert resources(synth.serverless, "AWS::S3::Bucket")[uploads]["DeletionPolicy"] == "Retain"


def test_both_buckets_deny_requests_without_tls(synth):
    for bucket in _bucket_ids(synth):
        synth.serverless.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": bucket},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Action": "s3:*",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                    "Principal": {"AWS": "*"},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_log_bucket_is_private_encrypted_and_expires_logs(synth):
    _, logs = _bucket_ids(synth)
    props = resources(synth.serverless, "AWS::S3::Bucket")[logs]["Properties"]
    assert props["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert props["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 365


def test_function_runs_the_image_asset_with_benchmarked_defaults(synth):
    _, props = _classifier(synth.serverless)
    assert props["PackageType"] == "Image"
    assert props["MemorySize"] == 1024
    assert props["Timeout"] == 30
    assert props["Architectures"] == ["x86_64"]
    assert "ReservedConcurrentExecutions" not in props
    image_uri = props["Code"]["ImageUri"]["Fn::Join"][1]
    assert image_uri[-1] == f":{synth.stacks.serverless.image.asset.asset_hash}"
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "firewatch"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Firewatch"
    assert env["FIREWATCH_ENVIRONMENT"] == "dev"  # the metrics' environment dimension
    assert env["FIREWATCH_THREADS"] == "1"
    topic = next(iter(resources(synth.serverless, "AWS::SNS::Topic")))
    assert env["ALERT_TOPIC_ARN"] == {"Ref": topic}
    uploads, _ = _bucket_ids(synth)
    assert env["FIREWATCH_BUCKET"] == {"Ref": uploads}  # the handler refuses events from any other bucket
    log_group = next(iter(resources(synth.serverless, "AWS::Logs::LogGroup")))
    assert props["LoggingConfig"] == {"LogGroup": {"Ref": log_group}}


def test_function_settings_follow_the_context(synth_custom):
    _, props = _classifier(synth_custom.serverless)
    assert props["MemorySize"] == 3538
    assert props["Timeout"] == 120
    assert props["Architectures"] == ["arm64"]
    assert props["ReservedConcurrentExecutions"] == 20
    assert props["Environment"]["Variables"]["FIREWATCH_THREADS"] == "2"  # 3538 MB = two vCPUs
    assert only(synth_custom.serverless, "AWS::Logs::LogGroup")["RetentionInDays"] == 90


def test_function_log_group_has_retention(synth):
    assert only(synth.serverless, "AWS::Logs::LogGroup")["RetentionInDays"] == 30


def test_uploads_notify_the_upload_queue_and_nothing_invokes_the_function_directly(synth):
    props = only(synth.serverless, "Custom::S3BucketNotifications")
    uploads, _ = _bucket_ids(synth)
    assert props["BucketName"] == {"Ref": uploads}
    assert props["NotificationConfiguration"] == {
        "QueueConfigurations": [
            {
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
                "QueueArn": {"Fn::GetAtt": [_queues(synth.serverless)["upload"], "Arn"]},
            }
        ]
    }
    assert not resources(synth.serverless, "AWS::Lambda::Permission")  # the queue replaced the S3 -> Lambda trigger


def test_upload_queue_is_encrypted_tls_only_and_only_this_bucket_may_send(synth):
    queues = _queues(synth.serverless)
    uploads, _ = _bucket_ids(synth)
    policies = {p["Properties"]["Queues"][0]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
                for p in resources(synth.serverless, "AWS::SQS::QueuePolicy").values()}  # fmt: skip
    for role in ("upload", "upload_dead_letters"):
        props = resources(synth.serverless, "AWS::SQS::Queue")[queues[role]]["Properties"]
        assert props["SqsManagedSseEnabled"] is True
        deny = [s for s in policies[queues[role]] if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [s3_send] = [s for s in policies[queues["upload"]] if s["Effect"] == "Allow"]
    assert s3_send["Principal"] == {"Service": "s3.amazonaws.com"} and "sqs:SendMessage" in s3_send["Action"]
    assert s3_send["Condition"] == {"ArnLike": {"aws:SourceArn": {"Fn::GetAtt": [uploads, "Arn"]}}}


def test_upload_queue_dead_letters_after_three_receives_and_keeps_them_14_days(synth):
    queues = _queues(synth.serverless)
    all_queues = resources(synth.serverless, "AWS::SQS::Queue")
    upload = all_queues[queues["upload"]]["Properties"]
    assert upload["RedrivePolicy"]["maxReceiveCount"] == 3
    assert all_queues[queues["upload_dead_letters"]]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    # A standard queue's dead letters keep their first enqueue time: the dead-letter queue must keep them longer.
    assert upload["MessageRetentionPeriod"] < 14 * 24 * 3600


@pytest.mark.parametrize(("which", "batch", "window", "concurrency", "timeout"), [
    ("synth", 10, 1, 10, 30), ("synth_custom", 5, 20, 15, 120),
])  # fmt: skip
def test_event_source_mapping_follows_the_context(request, which, batch, window, concurrency, timeout):
    template = request.getfixturevalue(which).serverless
    mapping = only(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [_queues(template)["upload"], "Arn"]}
    assert mapping["FunctionName"] == {"Ref": _classifier(template)[0]}
    assert mapping["BatchSize"] == batch and mapping["MaximumBatchingWindowInSeconds"] == window
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": concurrency}
    # AWS's guidance: at least six times the function timeout, plus the batching window.
    visibility = resources(template, "AWS::SQS::Queue")[_queues(template)["upload"]]["Properties"]["VisibilityTimeout"]
    assert _classifier(template)[1]["Timeout"] == timeout
    assert visibility == 6 * timeout + window


def test_results_table_is_on_demand_recoverable_encrypted_with_the_newest_index(synth):
    table_id, table = _table(synth.serverless)
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "key", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["GlobalSecondaryIndexes"] == [{
        "IndexName": "newest",
        "KeySchema": [{"AttributeName": "day", "KeyType": "HASH"}, {"AttributeName": "classified_at", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    }]  # fmt: skip
    assert "TimeToLiveSpecification" not in props  # unset resultsTtlDays: items never expire
    env = _classifier(synth.serverless)[1]["Environment"]["Variables"]
    assert env["FIREWATCH_RESULTS_TABLE"] == {"Ref": table_id}
    assert "FIREWATCH_RESULTS_TTL_DAYS" not in env


def test_results_ttl_follows_the_context(synth_custom):
    _, table = _table(synth_custom.serverless)
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert _classifier(synth_custom.serverless)[1]["Environment"]["Variables"]["FIREWATCH_RESULTS_TTL_DAYS"] == "90"


def test_results_index_names_are_the_contract_s():
    """stacks/ imports no runtime code, so the names are written twice: this keeps them equal."""
    from inference import contract
    from lambda_image.results_index import RESULTS_TTL_DAYS_ENV
    from stacks import config

    assert (config.INDEX_KEY, config.NEWEST_INDEX, config.NEWEST_PARTITION, config.NEWEST_SORT, config.INDEX_EXPIRES_AT,
            config.RESULTS_TABLE_ENV, config.RESULTS_TTL_DAYS_ENV, config.BATCH_ITEM_FAILURES) == (
        contract.INDEX_KEY, contract.NEWEST_INDEX, contract.NEWEST_PARTITION, contract.NEWEST_SORT,
        contract.INDEX_EXPIRES_AT, contract.RESULTS_TABLE_ENV, RESULTS_TTL_DAYS_ENV, contract.BATCH_ITEM_FAILURES)  # fmt: skip


def test_function_role_is_least_privilege(synth):
    uploads, _ = _bucket_ids(synth)
    _, function = _classifier(synth.serverless)
    role_id = function["Role"]["Fn::GetAtt"][0]
    topic = next(iter(resources(synth.serverless, "AWS::SNS::Topic")))
    queues = _queues(synth.serverless)
    table, _ = _table(synth.serverless)
    log_group = next(iter(resources(synth.serverless, "AWS::Logs::LogGroup")))
    statements = {
        (tuple(_actions(s)), str(s["Resource"])): s for s in _policy_statements(synth.serverless, role_id)
    }
    def arn(prefix):
        return {"Fn::Join": ["", [{"Fn::GetAtt": [uploads, "Arn"]}, f"/{prefix}*"]]}

    expected = {
        (("s3:GetObject", "s3:GetObjectVersion"), str(arn("uploads/"))),
        (("s3:GetObject", "s3:PutObject"), str(arn("results/"))),
        # Without it S3 answers 403, not 404, for a result that does not exist yet: every new upload would fail.
        (("s3:ListBucket",), str({"Fn::GetAtt": [uploads, "Arn"]})),
        (("sns:Publish",), str({"Ref": topic})),
        (("sqs:SendMessage",), str({"Fn::GetAtt": [queues["failed_events"], "Arn"]})),
        # What Lambda's poller needs to consume the upload queue as the function; no ChangeMessageVisibility.
        (("sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"), str({"Fn::GetAtt": [queues["upload"], "Arn"]})),
        # The handler only puts whole items: no reads, updates or deletes, and nothing on the indexes.
        (("dynamodb:PutItem",), str({"Fn::GetAtt": [table, "Arn"]})),
        (("logs:CreateLogStream", "logs:PutLogEvents"), str({"Fn::Join": ["", [{"Fn::GetAtt": [log_group, "Arn"]}, ":*"]]})),
    }
    assert set(statements) == expected
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in statements.values())
    role = resources(synth.serverless, "AWS::IAM::Role")[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_failed_direct_invocations_go_to_an_encrypted_dead_letter_queue(synth):
    queue_id = _queues(synth.serverless)["failed_events"]
    queue = resources(synth.serverless, "AWS::SQS::Queue")[queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    config = only(synth.serverless, "AWS::Lambda::EventInvokeConfig")
    assert config["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}}
    assert config["MaximumRetryAttempts"] == 2
    assert config["Qualifier"] == "$LATEST"
    synth.serverless.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {"PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])}},
    )  # fmt: skip


def test_alert_topic_is_encrypted_and_tls_only(synth):
    topic = only(synth.serverless, "AWS::SNS::Topic")
    key = topic["KmsMasterKeyId"]["Fn::Join"][1]
    assert key[:3] == ["arn:", {"Ref": "AWS::Partition"}, ":kms:"] and key[-1] == ":alias/aws/sns"
    synth.serverless.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {"PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Action": "sns:Publish", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])}},
    )  # fmt: skip
    assert not resources(synth.serverless, "AWS::SNS::Subscription")


def test_alert_email_subscribes_to_the_alert_topic(synth_custom):
    subscription = only(synth_custom.serverless, "AWS::SNS::Subscription")
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == "ops@example.com"


def test_outputs_and_name_parameters(synth):
    uploads, _ = _bucket_ids(synth)
    table, _ = _table(synth.serverless)
    topic = next(iter(resources(synth.serverless, "AWS::SNS::Topic")))
    synth.serverless.has_output("UploadBucketName", {"Value": {"Ref": uploads}})
    synth.serverless.has_output("ResultsTableName", {"Value": {"Ref": table}})
    synth.serverless.has_output("UploadQueueUrl", {"Value": {"Ref": _queues(synth.serverless)["upload"]}})
    synth.serverless.has_output("AlertTopicArn", {"Value": {"Ref": topic}})
    parameters = {p["Properties"]["Name"]: p["Properties"]["Value"]
                  for p in resources(synth.serverless, "AWS::SSM::Parameter").values()}  # fmt: skip
    assert parameters == {
        "/firewatch/dev/upload-bucket-name": {"Ref": uploads},
        "/firewatch/dev/results-table-name": {"Ref": table},
    }


def test_function_environment_names_are_the_ones_the_handler_reads(synth):
    """stacks/ imports no runtime code, so the names are written twice: this keeps them equal."""
    from inference.contract import RESULTS_TABLE_ENV
    from lambda_image.alerts import ALERT_TOPIC_ENV
    from lambda_image.events import BUCKET_ENV

    env = _classifier(synth.serverless)[1]["Environment"]["Variables"]
    assert {ALERT_TOPIC_ENV, BUCKET_ENV, RESULTS_TABLE_ENV} <= set(env)


def test_function_role_grants_nothing_that_deletes_or_writes_uploads(synth):
    _, function = _classifier(synth.serverless)
    statements = _policy_statements(synth.serverless, function["Role"]["Fn::GetAtt"][0])
    actions = {action for statement in statements for action in _actions(statement)}
    # Lambda's poller deletes the upload queue's messages once handled, as the function; nothing else is deleted.
    assert {action for action in actions if "Delete" in action} == {"sqs:DeleteMessage"}
    uploads_writes = [s for s in statements if "s3:PutObject" in _actions(s) and "uploads/" in str(s["Resource"])]
    assert uploads_writes == []
