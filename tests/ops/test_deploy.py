"""`python -m ops deploy|bootstrap|destroy` against stub `npx` and `docker`: what it checks, sets, passes and prints."""

from __future__ import annotations

import io

import pytest

from ops import deploy
from ops.__main__ import main


def _run(*argv: str) -> int:
    return main(list(argv))


def test_deploy_sets_the_environment_passes_the_settings_and_prints_the_next_steps(tools, tmp_path, capsys):
    outputs = tmp_path / "out.json"
    status = _run("deploy", "-c", "envName=prod", "-c", "alertEmail=a@b.c", "--region", "eu-west-1",
                  "--outputs-file", str(outputs), "--", "--require-approval", "never")  # fmt: skip

    assert status == 0
    (call,) = tools.calls("npx")
    assert call["argv"] == ["cdk", "deploy", "--all", "--outputs-file", str(outputs),
                            "-c", "envName=prod", "-c", "alertEmail=a@b.c", "--require-approval", "never"]  # fmt: skip
    env = call["env"]
    assert env["BUILDX_NO_DEFAULT_ATTESTATIONS"] == "1"  # or Lambda rejects the image
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert [c["argv"] for c in tools.calls("docker")] == [["info"]]
    out = capsys.readouterr().out
    bucket = "firewatch-prod-serverless-uploads1a2b3c4d-5e6f7g8h9i0j"
    assert f"aws s3 cp photo.jpg s3://{bucket}/uploads/photo.jpg --region eu-west-1" in out
    assert f"aws s3 cp s3://{bucket}/results/photo.jpg.json - --region eu-west-1" in out
    assert "http://firewa-LoadB-1234567890.eu-west-1.elb.amazonaws.com" in out
    assert "#dashboards:name=firewatch-prod-dashboard" in out
    assert ("aws sns subscribe --topic-arn arn:aws:sns:eu-west-1:123456789012:firewatch-prod-monitoring-AlarmTopic-GhIjKl"
            " --protocol email") in out


def test_the_region_comes_from_the_profile_when_not_given(tools, tmp_path, monkeypatch):
    (tmp_path / "aws-config").write_text("[profile lab]\nregion = ap-south-1\n")
    (tmp_path / "aws-credentials").write_text("[lab]\naws_access_key_id = AKIDLAB\naws_secret_access_key = x\n")
    assert _run("bootstrap", "--profile", "lab") == 0
    (call,) = tools.calls("npx")
    assert call["argv"] == ["cdk", "bootstrap"]
    assert (call["env"]["AWS_REGION"], call["env"]["AWS_PROFILE"]) == ("ap-south-1", "lab")
    assert tools.calls("docker") == []  # bootstrapping builds nothing


def test_an_exported_region_is_used_for_both_the_cli_and_the_sdk(tools, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert _run("bootstrap") == 0
    assert tools.calls("npx")[0]["env"]["AWS_DEFAULT_REGION"] == "us-west-2"


def test_without_a_region_it_says_how_to_set_one_and_runs_nothing(tools, capsys):
    assert _run("deploy") == 2
    error = capsys.readouterr().err
    assert "no AWS region is set" in error and "AWS_REGION" in error and "REGION=" in error
    assert tools.calls("npx") == []


def test_without_credentials_it_says_how_to_get_them(tools, monkeypatch, capsys):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert _run("deploy", "--region", "eu-west-1") == 2
    error = capsys.readouterr().err
    assert "no AWS credentials" in error and "aws configure" in error
    assert tools.calls("npx") == []


def test_an_unknown_profile_is_named(tools, capsys):
    assert _run("deploy", "--profile", "nope", "--region", "eu-west-1") == 2
    assert "nope" in capsys.readouterr().err


def test_deploy_needs_docker_and_says_so(tools, capsys):
    (tools.folder / "docker").unlink()
    assert _run("deploy", "--region", "eu-west-1") == 2
    assert "`docker` is not on PATH" in capsys.readouterr().err
    assert tools.calls("npx") == []


def test_a_docker_without_its_daemon_is_reported(tools, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_DOCKER_STATUS", "1")
    assert _run("deploy", "--region", "eu-west-1") == 2
    assert "daemon does not answer" in capsys.readouterr().err


def test_without_the_cdk_cli_it_says_to_install_node(tools, capsys):
    (tools.folder / "npx").unlink()
    assert _run("bootstrap", "--region", "eu-west-1") == 2
    assert "Node.js" in capsys.readouterr().err


def test_a_failed_deploy_returns_its_status_and_prints_no_next_steps(tools, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NPX_STATUS", "3")
    assert _run("deploy", "--region", "eu-west-1", "--outputs-file", str(tmp_path / "none.json")) == 3
    captured = capsys.readouterr()
    assert "Next steps" not in captured.out and "exit status 3" in captured.err


def test_next_steps_list_only_what_the_deployment_has(tmp_path):
    serverless_only = {"UploadBucketName": "b", "AlertTopicArn": "arn:aws:sns:eu-west-1:1:t"}
    steps = deploy.next_steps(serverless_only, "eu-west-1")
    assert "s3://b/uploads/photo.jpg" in steps and "Web page" not in steps and "Dashboard" not in steps


def test_next_steps_again_from_the_outputs_file_of_the_chosen_environment(tools, tmp_path, capsys):
    outputs = tmp_path / "out.json"
    assert _run("deploy", "-c", "envName=prod", "--region", "eu-west-1", "--outputs-file", str(outputs)) == 0
    capsys.readouterr()
    assert _run("deploy", "--next-steps", "-c", "envName=prod", "--outputs-file", str(outputs)) == 0
    assert "firewatch-prod-serverless-uploads" in capsys.readouterr().out
    assert _run("deploy", "--next-steps", "--outputs-file", str(tmp_path / "missing.json")) == 2
    assert "run `make deploy` first" in capsys.readouterr().err


KEPT = {"firewatch-dev-serverless": {"Resources": {
    "Uploads1E7D9C5B": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"},
    "FunctionLogs": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete"},
}}}  # fmt: skip


def test_destroy_says_what_is_kept_and_asks_first(tools, monkeypatch, capsys):
    monkeypatch.setattr(deploy, "synthesize", lambda context: KEPT)
    monkeypatch.setattr("sys.stdin", _Terminal("dev\n"))
    assert _run("destroy", "--region", "eu-west-1") == 0
    out = capsys.readouterr().out
    assert "firewatch-dev-serverless: AWS::S3::Bucket Uploads1E7D9C5B" in out and "FunctionLogs" not in out
    (call,) = tools.calls("npx")
    assert call["argv"] == ["cdk", "destroy", "--all", "--force"]


def test_destroy_stops_on_a_wrong_answer_and_outside_a_terminal_without_force(tools, monkeypatch, capsys):
    monkeypatch.setattr(deploy, "synthesize", lambda context: KEPT)
    monkeypatch.setattr("sys.stdin", _Terminal("yes\n"))
    assert _run("destroy", "--region", "eu-west-1") == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert _run("destroy", "--region", "eu-west-1") == 1
    assert "--force" in capsys.readouterr().out
    assert tools.calls("npx") == []
    assert _run("destroy", "--region", "eu-west-1", "--force", "-c", "envName=prod") == 0
    assert tools.calls("npx")[0]["argv"] == ["cdk", "destroy", "--all", "--force", "-c", "envName=prod"]


@pytest.mark.parametrize("pair", ["envName", "=x"])
def test_a_malformed_setting_is_refused(tools, pair, capsys):
    assert _run("deploy", "-c", pair, "--region", "eu-west-1") == 2
    assert "KEY=VALUE" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_destroy_still_asks_when_the_app_does_not_synthesize(tools, monkeypatch, capsys):
    def broken(context):
        raise deploy.SynthError("the app did not synthesize:\nConfigError: ...")

    monkeypatch.setattr(deploy, "synthesize", broken)
    assert _run("destroy", "--region", "eu-west-1", "--force") == 0
    assert "upload and access-log buckets" in capsys.readouterr().out
    assert tools.calls("npx")[0]["argv"][:2] == ["cdk", "destroy"]
