"""The classifier function's IAM role, taken from the synthesized template and recreated in moto.

The statements are the template's own, with CloudFormation intrinsics (``Ref``, ``Fn::GetAtt``, ``Fn::Join``)
resolved to the moto resources that stand in for the stack's: so handler code and stack policy cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.access_control import IAMPolicy, PermissionResult

REGION = "us-east-1"
PSEUDO_PARAMETERS = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": DEFAULT_ACCOUNT_ID,
                     "AWS::URLSuffix": "amazonaws.com"}  # fmt: skip


def classifier_role_id(template: dict) -> str:
    """The logical id of the container-image function's role (the other function is the CDK's notification handler)."""
    functions = [r for r in template["Resources"].values()
                 if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("PackageType") == "Image"]  # fmt: skip
    assert len(functions) == 1, functions
    return functions[0]["Properties"]["Role"]["Fn::GetAtt"][0]


def role_statements(template: dict, role_id: str) -> list[dict]:
    """Every statement of every policy attached to ``role_id`` (inline ``AWS::IAM::Policy`` resources)."""
    statements = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]:
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    role = template["Resources"][role_id]["Properties"]
    assert not role.get("ManagedPolicyArns") and not role.get("Policies"), "policies the test does not model"
    return statements


def resolve(value, names: dict[str, dict[str, str]]):
    """``value`` with every intrinsic replaced; ``names[logical_id]`` gives the resource's ``Ref`` and ``Arn``."""
    if isinstance(value, list):
        return [resolve(item, names) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        ref = value["Ref"]
        return PSEUDO_PARAMETERS[ref] if ref in PSEUDO_PARAMETERS else _lookup(names, ref, "Ref")
    if set(value) == {"Fn::GetAtt"}:
        logical_id, attribute = value["Fn::GetAtt"]
        return _lookup(names, logical_id, attribute)
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(part, names) for part in parts)
    if any(name.startswith("Fn::") for name in value):
        raise ValueError(f"intrinsic not modelled by the test: {value}")
    return {key: resolve(item, names) for key, item in value.items()}


def _lookup(names: dict, logical_id: str, attribute: str) -> str:
    try:
        return names[logical_id][attribute]
    except KeyError:
        raise ValueError(f"the function's policy names {logical_id}.{attribute}, which the test lab does not model") from None


def stand_ins(template: dict, *, bucket: str, topic_arn: str, queue_arn: str, table: str) -> dict[str, dict[str, str]]:
    """What each resource of the template the policy may name is in the moto account.

    ``queue_arn`` is the function's own dead-letter queue; the upload queue (the one with a redrive policy) and its
    dead-letter queue get ARNs of their own, so a statement naming one queue cannot pass for another.
    """
    names = {}
    queues = {k: r.get("Properties", {}) for k, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    upload_queues = [k for k, props in queues.items() if "RedrivePolicy" in props]
    dead_letters = [queues[k]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] for k in upload_queues]
    for logical_id, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::S3::Bucket":
            # The upload bucket logs its access; the other bucket is the access-log bucket.
            name = bucket if "LoggingConfiguration" in props else f"{bucket}-access-logs"
            names[logical_id] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        elif kind == "AWS::SNS::Topic":
            names[logical_id] = {"Ref": topic_arn, "TopicName": topic_arn.rsplit(":", 1)[-1]}
        elif kind == "AWS::SQS::Queue" and logical_id in upload_queues:
            names[logical_id] = {"Arn": f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT_ID}:firewatch-uploads"}
        elif kind == "AWS::SQS::Queue" and logical_id in dead_letters:
            names[logical_id] = {"Arn": f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT_ID}:firewatch-upload-dead-letters"}
        elif kind == "AWS::SQS::Queue":
            names[logical_id] = {"Arn": queue_arn}
        elif kind == "AWS::DynamoDB::Table":
            names[logical_id] = {"Ref": table, "Arn": table_arn(table)}
        elif kind == "AWS::Logs::LogGroup":
            names[logical_id] = {"Arn": f"arn:aws:logs:{REGION}:{DEFAULT_ACCOUNT_ID}:log-group:/aws/lambda/firewatch:*"}
    return names


def table_arn(table: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT_ID}:table/{table}"


def upload_queue_arn() -> str:
    return f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT_ID}:firewatch-uploads"


@dataclass
class FunctionRole:
    arn: str
    statements: list[dict]

    @classmethod
    def create(cls, template: dict, lab, monkeypatch) -> "FunctionRole":
        """Create the role in moto with exactly the template's statements and make its credentials the handler's."""
        import boto3

        queue_url = lab.sqs.create_queue(QueueName="firewatch-failed-events")["QueueUrl"]
        queue_arn = lab.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        names = stand_ins(template, bucket=lab.bucket_name, topic_arn=lab.topic_arn, queue_arn=queue_arn, table=lab.results_table)
        statements = resolve(role_statements(template, classifier_role_id(template)), names)

        iam, sts = boto3.client("iam", region_name=REGION), boto3.client("sts", region_name=REGION)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip
        arn = iam.create_role(RoleName="firewatch-classifier", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(
            RoleName="firewatch-classifier",
            PolicyName="classifier",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        credentials = sts.assume_role(RoleArn=arn, RoleSessionName="firewatch-classifier")["Credentials"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
        monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
        monkeypatch.setenv("AWS_SECURITY_TOKEN", credentials["SessionToken"])
        # moto authorizes SNS actions against resource "*" only; AWS authorizes Publish against the topic.
        from moto.sns.responses import SNSResponse

        monkeypatch.setattr(SNSResponse, "_determine_resource", lambda self: self._get_param("TopicArn") or "*", raising=False)
        # Likewise DynamoDB: moto authorizes against "*", AWS against the table named in the request.
        from moto.dynamodb.responses import DynamoHandler

        def table_resource(self):
            body = self.body if isinstance(self.body, dict) else json.loads(self.body or "{}")  # parsed by moto 5.2
            name = body.get("TableName")
            return table_arn(name) if name else "*"

        monkeypatch.setattr(DynamoHandler, "_determine_resource", table_resource, raising=False)
        return cls(arn, statements)

    def allows(self, action: str, resource: str) -> bool:
        """moto's own evaluation of the role's statements (the one it enforces on requests)."""
        policy = IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": self.statements}))
        return policy.is_action_permitted(action, resource) == PermissionResult.PERMITTED

    def apply_missing_key_rule(self, s3_client) -> None:
        """S3's documented rule, which moto does not apply: reading a key that does not exist is answered 404
        NoSuchKey only if the caller may s3:ListBucket the bucket, and 403 AccessDenied otherwise."""

        def remember_bucket(params, context, **_):
            context["firewatch_bucket"] = params.get("Bucket")

        def answer(http_response, parsed, context, **_):
            error = parsed.get("Error", {})
            if error.get("Code") in ("NoSuchKey", "404") and not self.allows(
                "s3:ListBucket", f"arn:aws:s3:::{context.get('firewatch_bucket')}"
            ):
                error.update(Code="AccessDenied", Message="Access Denied (without s3:ListBucket, S3 hides absent keys)")
                http_response.status_code = 403

        s3_client.meta.events.register("before-parameter-build.s3.GetObject", remember_bucket)
        s3_client.meta.events.register("after-call.s3.GetObject", answer)
