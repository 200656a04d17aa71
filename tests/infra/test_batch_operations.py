"""The role S3 Batch Operations assumes for backfill jobs: the manifest, the classifier, the report, nothing else."""

from __future__ import annotations

from tests.infra.conftest import resources
from tests.infra.test_serverless import _actions, _bucket_ids, _classifier, _policy_statements


def _role_id(synth) -> str:
    found = [
        logical_id for logical_id, role in resources(synth.serverless, "AWS::IAM::Role").items()
        if role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "batchoperations.s3.amazonaws.com"}
    ]  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def test_batch_operations_role_reads_manifests_invokes_the_classifier_and_writes_reports(synth):
    uploads, _ = _bucket_ids(synth)
    function_id, _ = _classifier(synth.serverless)
    role_id = _role_id(synth)
    statements = {(tuple(_actions(s)), str(s["Resource"])) for s in _policy_statements(synth.serverless, role_id)}

    def objects(prefix: str) -> str:
        return str({"Fn::Join": ["", [{"Fn::GetAtt": [uploads, "Arn"]}, f"/{prefix}*"]]})

    assert statements == {
        (("s3:GetObject", "s3:GetObjectVersion"), objects("batch-operations/manifests/")),
        (("s3:PutObject",), objects("batch-operations/reports/")),
        (("lambda:InvokeFunction",), str({"Fn::GetAtt": [function_id, "Arn"]})),
    }
    role = resources(synth.serverless, "AWS::IAM::Role")[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role


def test_the_role_and_the_classifier_are_outputs_for_the_ops_command(synth):
    function_id, _ = _classifier(synth.serverless)
    synth.serverless.has_output("BatchOperationsRoleArn", {"Value": {"Fn::GetAtt": [_role_id(synth), "Arn"]}})
    synth.serverless.has_output("ClassifierFunctionArn", {"Value": {"Fn::GetAtt": [function_id, "Arn"]}})
