"""The README is true of the code: its commands, names, routes, settings and paths exist."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
PAGES = {path: path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
EXPERIMENTS = PAGES[ROOT / "docs" / "model-experiments.md"]
SOURCES = "\n".join(p.read_text() for folder in ("inference", "training", "lambda_image", "web_app", "demo", "stacks", "benchmarks", "tests")
                    for p in (ROOT / folder).rglob("*.py"))


def test_the_two_commands_are_make_targets_and_ci_runs_the_test_command():
    makefile = (ROOT / "Makefile").read_text()
    for target in sorted(set(re.findall(r"\bmake ([a-z][a-z-]*)", README))):
        assert re.search(rf"^{target}:", makefile, re.M), f"`make {target}` is in the README but not in the Makefile"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("module", sorted(set(re.findall(r"python -m ([a-z_]+)", README)) - {"training"}))
def test_every_python_module_command_answers_help(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage" in done.stdout.lower(), done.stderr[-2000:]


def test_training_help_lists_the_options_the_readme_uses():
    commands = (["training"], ["training.score"], ["training.pack"], ["training.accelerated", "grid"],
                ["training.accelerated", "one"], ["training.loso"], ["training.rescore"],
                ["training.recalibrate"])
    helps = [subprocess.run([sys.executable, "-m", *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
             for command in commands]
    assert all(done.returncode == 0 for done in helps)
    training_pages = README[README.index("## Train the model"):README.index("## Deploy")] + EXPERIMENTS
    for option in sorted(set(re.findall(r"--[a-z][a-z-]+", training_pages))):
        assert any(option in done.stdout for done in helps), option


def test_every_environment_variable_is_read_by_the_code():
    table = README[README.index("## Configuration"):README.index("## Tests")]
    names = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", table))
    assert len(names) >= 10
    missing = {name for name in names if name not in SOURCES and name not in (ROOT / "web_app" / "gunicorn.conf.py").read_text()}
    assert missing <= {"GUNICORN_CMD_ARGS"}, missing  # that one gunicorn reads itself


def test_every_context_key_is_a_setting():
    config = (ROOT / "stacks" / "config.py").read_text()
    table = README[README.index("| context key"):README.index("What the stacks declare")]
    keys = set(re.findall(r"^\| `([a-zA-Z]+)`", table, re.M)) | set(re.findall(r"/ `([a-zA-Z]+)`", table))
    assert len(keys) >= 12
    assert {key for key in keys if f'"{key}"' not in config} == set()


def test_error_codes_match_the_core():
    from inference import ERROR_CODES

    table = README[README.index("| error code"):README.index("What the decoder accepts")]
    assert set(re.findall(r"`([a-z_]+)`", table)) == set(ERROR_CODES)


def test_the_api_status_table_is_the_contracts():
    from inference.contract import HTTP_STATUS_BY_CODE

    table = README[README.index("| status | codes"):README.index("`GET /api/v1/results` reads one of two sources")]
    documented = {code: int(status) for status, codes in re.findall(r"^\| (\d{3}) \| (.*) \|$", table, re.M)
                  for code in re.findall(r"`([a-z_]+)`", codes) if not code.startswith("api")}  # fmt: skip
    assert documented == HTTP_STATUS_BY_CODE


def test_routes_match_the_app():
    from web_app.app import create_app

    app = create_app(config={"RESULTS_BUCKET": "readme-check"})
    rules = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    documented = set(re.findall(r"^\| `(?:GET|POST) (/[^` ?]*)", README, re.M))
    assert documented == rules


@pytest.mark.parametrize("path", sorted({p for text in PAGES.values() for p in re.findall(r"`((?:[a-z_]+/)+[a-zA-Z_.]+)`", text)
                                         if not p.startswith(("uploads/", "results/"))}))
def test_every_path_named_exists(path):
    assert (ROOT / path).exists() or (ROOT / path.rstrip("/")).exists(), path


def test_the_cli_example_prints_the_documented_shape(fire_photo):
    done = subprocess.run([sys.executable, "-m", "inference", str(fire_photo), "--threshold", "0.5"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    import json

    line = json.loads(done.stdout)
    assert done.returncode == 0 and list(line) == ["source", "label", "fire_probability", "model_version"]


def test_code_and_served_documents_cite_only_what_the_repository_holds():
    """The project documents itself: no pointer to a design file outside it (README.md and docs/ hold what is needed)."""
    from web_app.app import create_app

    served = create_app().test_client().get("/api/v1/openapi.json").get_data(as_text=True)
    texts = {"the served OpenAPI document": served}
    for folder in ("inference", "lambda_image", "web_app", "demo", "stacks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".html", ".js", ".sh") or path.name == "Dockerfile":
                texts[str(path.relative_to(ROOT))] = path.read_text()
    citing = sorted(name for name, text in texts.items() if re.search(r"ARCHITECTURE\.md|\.\./shared/(?!datasets)", text))
    assert citing == []


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    anchors: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and (heading := re.match(r"#{1,6} (.+)", line)):
            anchor = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            numbered, n = anchor, 0
            while numbered in anchors:
                n += 1
                numbered = f"{anchor}-{n}"
            anchors.add(numbered)
    return anchors


def test_heading_anchors_follow_githubs_rule():
    assert heading_anchors("## The `.tflite` file: int8\n```\n# not a heading\n```\n## Width\n## Width") == {
        "the-tflite-file-int8", "width", "width-1"}


def test_every_link_inside_the_repository_resolves():
    """README.md and docs/ link to each other's sections: a moved or renamed heading must not leave a dead link."""
    anchors = {page.resolve(): heading_anchors(text) for page, text in PAGES.items()}  # once a page, not once a link
    dead = []
    for page, text in PAGES.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                dead.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in (anchors.get(linked) or heading_anchors(linked.read_text())):
                dead.append(f"{page.name}: {target} (no such heading)")
    assert dead == []
