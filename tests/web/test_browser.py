"""A real browser on the page: Playwright drives Debian's Chromium against the app under gunicorn."""

from __future__ import annotations

import base64
import shutil

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium")
ARTIFACTS = ROOT / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium); browser tests skipped"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Debian's Chromium only: Playwright never downloads a browser here.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    problems: list[str] = []

    def on_console(message):
        # The page's own API calls answered 4xx (the text file's 415) are expected, not problems.
        expected = message.text.startswith("Failed to load resource: the server responded with a status of 4")
        if message.type == "error" and not expected:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(served.url + "/")
    yield page
    context.close()
    assert not problems, f"browser console errors (CSP violations show up here): {problems}"


def wait_for_results(page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#results .result').length === n"
        " && !document.querySelector('#results .result[data-state=pending]')",
        arg=count,
        timeout=20_000,
    )


def card(page, name: str):
    return page.locator("#results .result", has=page.locator(".result-name").get_by_text(name, exact=True))


def test_upload_photos_and_a_text_file(page, classifier, fire_photo, nofire_photo, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a photo\n")
    page.set_input_files("#image-input", [str(fire_photo), str(nofire_photo), str(notes)])
    wait_for_results(page, 3)

    for path in (fire_photo, nofire_photo):
        prediction = classifier.classify(path.read_bytes())
        result = card(page, path.name)
        assert result.get_attribute("data-state") == prediction.label
        assert result.locator(".badge").inner_text().lower() == ("fire" if prediction.is_fire else "no fire")
        assert f"{prediction.fire_probability * 100:.1f}% fire probability" in result.inner_text()
        assert result.locator("meter").evaluate("m => m.value") == pytest.approx(prediction.fire_probability)
        assert "Took" in result.locator(".timing").inner_text() and " ms" in result.locator(".timing").inner_text()
        assert result.locator(".thumb-img").is_visible()  # the photo itself is shown

    bad = card(page, "notes.txt")
    assert bad.get_attribute("data-state") == "error"
    assert "not an image this service can read" in bad.locator(".error-text").inner_text()
    assert "3 photos checked" in page.locator("#status").inner_text()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)


def test_drag_and_drop(page, nofire_photo, classifier):
    encoded = base64.b64encode(nofire_photo.read_bytes()).decode()
    page.evaluate(
        """([name, data]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            const zone = document.getElementById("upload-form");
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [nofire_photo.name, encoded],
    )
    wait_for_results(page, 1)
    assert card(page, nofire_photo.name).get_attribute("data-state") == classifier.classify(nofire_photo.read_bytes()).label


def test_keyboard_reaches_the_file_chooser(page):
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "image-input":
            break
    assert page.evaluate("document.activeElement.id") == "image-input"
    outline = page.evaluate("getComputedStyle(document.querySelector('label[for=image-input]')).outlineStyle")
    assert outline == "solid"  # the visible button shows where the focus is
    assert page.locator("[data-no-js]").is_hidden()  # the script took over the form
