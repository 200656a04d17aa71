"""A real browser on the page: Playwright drives Debian's Chromium against the app under gunicorn."""

from __future__ import annotations

import base64
import json

import pytest
from PIL import Image

from tests.conftest import ARTIFACTS, CHROMIUM
from tests.page import PHONE, VIEWPORT, card, collect_problems, wait_for_results

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium); browser tests skipped"),
]


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    problems = collect_problems(page, ignore_4xx=True)  # the text file's 415 is expected
    page.goto(served.url + "/")
    yield page
    context.close()
    assert not problems, f"browser console errors (CSP violations show up here): {problems}"


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
    # Only classified photos are counted as checked; the text file is counted apart.
    assert page.locator("#status").inner_text() == "2 photos checked, 1 could not be read."

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


def _by_certainty(classifier, photos, certainty: str, count: int) -> list:
    chosen = [p for p in photos if classifier.classify(p.read_bytes()).certainty == certainty][:count]
    if len(chosen) < count:
        pytest.skip(f"fewer than {count} {certainty} photos among the samples for this model")
    return chosen


def test_results_are_in_view_at_1280x800(page, classifier, fire_photos, nofire_photos):
    # Two rows of results fit under the compact upload area on a laptop screen.
    photos = _by_certainty(classifier, fire_photos + nofire_photos, "clear", 6)
    page.set_input_files("#image-input", [str(p) for p in photos])
    wait_for_results(page, 6)
    assert page.evaluate("window.scrollY") == 0
    for index in range(6):
        box = page.locator("#results .result").nth(index).bounding_box()
        assert box["y"] + box["height"] <= VIEWPORT["height"], f"result {index + 1} is below the fold"
    assert "Drag and drop photos here" in page.locator("#upload-form").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-1280x800.png"))


def test_borderline_verdict_is_marked_in_words_and_the_threshold_on_the_bar(page, classifier, fire_photos, nofire_photos):
    [near] = _by_certainty(classifier, fire_photos + nofire_photos, "borderline", 1)
    [sure] = _by_certainty(classifier, fire_photos + nofire_photos, "clear", 1)
    page.set_input_files("#image-input", [str(near), str(sure)])
    wait_for_results(page, 2)

    borderline, clear = card(page, near.name), card(page, sure.name)
    assert borderline.get_attribute("data-certainty") == "borderline"
    assert clear.get_attribute("data-certainty") == "clear"
    note = borderline.locator(".certainty")
    assert note.is_visible() and note.inner_text().startswith("Borderline")
    assert note.locator("svg.certainty-icon").is_visible()  # not told by colour alone: words and an icon
    assert clear.locator(".certainty").is_hidden()
    # The threshold marker sits on the bar at the threshold, on every verdict.
    for result in (borderline, clear):
        bar = result.locator("meter").bounding_box()
        mark = result.locator(".threshold-mark line:not(.threshold-halo)").bounding_box()
        centre = mark["x"] + mark["width"] / 2
        assert centre == pytest.approx(bar["x"] + bar["width"] * classifier.threshold, abs=2)
        label = result.locator("meter").get_attribute("aria-label")
        assert label == f"Fire probability (decision threshold {classifier.threshold * 100:.0f}%)"
    assert borderline.evaluate("e => getComputedStyle(e).borderLeftStyle") == "dashed"  # a pattern, not only a colour


def test_more_photos_than_the_limit_keeps_the_notice_beside_the_count(page, web_app, nofire_photo):
    limit = web_app.config["PAGE_MAX_FILES"]
    data = nofire_photo.read_bytes()
    files = [{"name": f"photo-{i:02d}.jpg", "mimeType": "image/jpeg", "buffer": data} for i in range(limit + 1)]
    page.set_input_files("#image-input", files)
    wait_for_results(page, limit)
    notice = page.locator("#notice")
    assert notice.is_visible()
    assert notice.inner_text() == f"You chose {limit + 1} photos; only the first {limit} are checked at a time."
    assert page.locator("#status").inner_text() == f"{limit} photos checked."
    page.click("#clear-results")
    assert notice.is_hidden() and page.locator("#status").inner_text() == "No photos checked yet."


def test_a_phone_is_asked_to_choose_photos_not_to_drag_them(browser, served, classifier, fire_photos, nofire_photos):
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        page.goto(served.url + "/")
        zone = page.locator("#upload-form")
        assert "drag" not in zone.inner_text().lower() and "Choose photos to check" in zone.inner_text()
        assert page.locator("label[for=image-input]").is_visible()
        near = _by_certainty(classifier, fire_photos + nofire_photos, "borderline", 1)
        page.set_input_files("#image-input", [str(p) for p in [*near, fire_photos[0], nofire_photos[0]]])
        wait_for_results(page, 3)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["viewport"]["width"]  # no sideways scroll
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-page-390x844.png"))
    finally:
        context.close()


PANEL_BUCKET = "firewatch-browser-test"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Local S3 (moto's server, in this process) and the app under gunicorn reading its results/."""
    import boto3
    from moto.server import ThreadedMotoServer

    from .conftest import Server, free_port

    port = free_port()
    s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3_server.start()
    aws = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=aws["AWS_ENDPOINT_URL"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=PANEL_BUCKET)
    env = {**aws, "FIREWATCH_RESULTS_BUCKET": PANEL_BUCKET}
    server = Server(tmp_path_factory.mktemp("web-panel") / "gunicorn.log", "--workers", "1", env=env)
    try:
        yield server, s3
    finally:
        server.stop()
        s3_server.stop()


def _put_result(s3, name: str, outcome: dict) -> None:
    from datetime import datetime, timezone

    key = f"uploads/{name}"
    record = {"source": f"s3://{PANEL_BUCKET}/{key}", **outcome, "bucket": PANEL_BUCKET, "key": key, "size": 1000,
              "etag": '"0"', "classified_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
    s3.put_object(Bucket=PANEL_BUCKET, Key=f"results/{name}.json", Body=json.dumps(record).encode())


def test_pipeline_panel_shows_and_refreshes_results(browser, pipeline):
    server, s3 = pipeline
    _put_result(s3, "lake-shore.jpg", {"label": "nofire", "fire_probability": 0.031, "model_version": "v"})
    _put_result(s3, "notes.txt", {"error": {"code": "unsupported_format",
                                            "message": "The file is not an image this service can read."}})
    _put_result(s3, "ridge-smoke.jpg", {"label": "fire", "fire_probability": 0.962, "model_version": "v"})

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    problems = collect_problems(page)
    try:
        page.goto(server.url + "/")
        panel = page.get_by_role("complementary", name="Latest from the serverless pipeline")
        assert panel.is_visible()
        # The page never waits long for S3: on a slow machine the panel may fill in just after it.
        page.wait_for_function("() => document.querySelectorAll('#pipeline .feed-name').length === 3", timeout=10_000)
        names = panel.locator(".feed-name").all_inner_texts()
        assert names == ["ridge-smoke.jpg", "notes.txt", "lake-shore.jpg"]
        assert panel.locator(".feed-item").first.get_attribute("data-state") == "fire"
        assert "96.2% fire probability" in panel.locator(".feed-item").first.inner_text()
        assert "not an image this service can read" in panel.locator(".feed-item").nth(1).inner_text()
        page.wait_for_function("() => /ago$|^just now$/.test(document.querySelector('#pipeline time').textContent)",
                               timeout=5_000)  # the script turned timestamps into relative times
        # The box sits beside the upload area on a wide screen.
        assert panel.bounding_box()["x"] > page.locator(".workspace").bounding_box()["x"] + 600

        _put_result(s3, "new-arrival.jpg", {"label": "nofire", "fire_probability": 0.2, "model_version": "v"})
        page.wait_for_function("() => document.querySelector('#pipeline .feed-name').textContent === 'new-arrival.jpg'",
                               timeout=15_000)  # one poll interval (5 s) plus the server's 2 s cache
        assert page.locator("#pipeline-status").inner_text() == "1 new result from the pipeline."
        assert panel.locator(".feed-item").count() == 4

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-panel.png"), full_page=True)
    finally:
        context.close()
    assert not problems, f"browser console errors (CSP violations show up here): {problems}"


def test_with_the_pipeline_panel_three_results_are_in_view_at_1280x800(browser, pipeline, classifier, fire_photos,
                                                                       nofire_photos):  # fmt: skip
    # The panel takes a column, so results come two abreast: the third is on the second row, still in view.
    server, _ = pipeline
    photos = _by_certainty(classifier, fire_photos + nofire_photos, "clear", 3)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.set_input_files("#image-input", [str(p) for p in photos])
        wait_for_results(page, 3)
        assert page.locator("#pipeline").is_visible()
        for index in range(3):
            box = page.locator("#results .result").nth(index).bounding_box()
            assert box["y"] + box["height"] <= VIEWPORT["height"], f"result {index + 1} is below the fold"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-page-with-panel-1280x800.png"))
    finally:
        context.close()


@pytest.mark.parametrize(("options", "touch"), [({"viewport": {"width": 1024, "height": 768}, "has_touch": True}, True),
                                                ({"viewport": {"width": 1024, "height": 768}}, False),
                                                ({"viewport": {"width": 500, "height": 800}}, True)])  # fmt: skip
def test_drag_and_drop_is_offered_only_to_a_mouse_on_a_wide_screen(browser, served, options, touch):
    # A tablet (coarse pointer) and a narrow window are asked to choose photos; a desktop browser may drop them.
    context = browser.new_context(**options)
    try:
        page = context.new_page()
        page.goto(served.url + "/")
        text = page.locator("#upload-form").inner_text()
        assert ("Choose photos to check" in text) == touch and ("Drag and drop photos here" in text) == (not touch)
    finally:
        context.close()


# ---------------------------------------------------------------------------------------------------- fire map
def _overlay_ink(result) -> int:
    """How many overlay pixels are painted (alpha > 0)."""
    return result.locator(".fire-map-overlay").evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }")


def _served_map(classifier, photo) -> list[list[float]]:
    """The served model's map of this photo, as the API returns it."""
    return [list(row) for row in classifier.classify(photo.read_bytes(), with_map=True).fire_map]


def test_show_where_toggles_the_fire_map_overlay(browser, served, classifier, fire_photo, nofire_photo, tmp_path):
    from tests.conftest import _dataset_file

    # A caption's words follow the model's map of that photo, so real photos are checked against the words for the
    # served model's map (a new model must not break the test), and the words themselves against made-up maps.
    quiet_photo = tmp_path / "grey.png"  # a plain grey photo: no model worth serving sees fire evidence in it
    Image.new("RGB", (250, 250), (128, 128, 128)).save(quiet_photo)

    street = _dataset_file("fire-dataset/fire/fire.10.jpg")  # a second fire photo: flames along the bottom of a forest
    for name, viewport in (("desktop", {"width": 1280, "height": 800}), ("phone", {"width": 390, "height": 844})):
        context = browser.new_context(viewport=viewport, device_scale_factor=2 if name == "phone" else 1)
        page = context.new_page()
        problems = collect_problems(page)
        try:
            page.goto(served.url + "/")
            page.set_input_files("#image-input", [str(fire_photo), str(nofire_photo), str(street), str(quiet_photo)])
            wait_for_results(page, 4)
            result = card(page, fire_photo.name)
            toggle = result.get_by_role("button", name="Show where")
            assert toggle.is_visible() and toggle.get_attribute("aria-pressed") == "false"
            overlay = result.locator(".fire-map-overlay")
            assert overlay.is_hidden() and result.locator(".map-caption").is_hidden()

            toggle.focus()
            page.keyboard.press("Enter")  # a real button: the keyboard works it
            assert toggle.get_attribute("aria-pressed") == "true"
            assert overlay.is_visible() and _overlay_ink(result) > 0
            assert overlay.bounding_box() == result.locator(".thumb").bounding_box(), "drawn over the thumbnail"
            assert "Fire evidence" in result.locator(".map-caption").inner_text()
            assert result.locator(".thumb").bounding_box()["width"] > 150, "the thumbnail grows to show the map"

            describe = lambda fire_map: page.evaluate("m => FirewatchMap.describe(m)", fire_map)  # noqa: E731
            bottom = [[0.1] * 10 for _ in range(8)] + [[0.9] * 10 for _ in range(2)]
            assert describe(bottom) == "Fire evidence over about 20% of the photo, mostly the bottom (coarse 10 × 10 map)."
            assert "nearly everywhere" in describe([[0.9] * 10 for _ in range(10)])
            for photo in (nofire_photo, street):
                other = card(page, photo.name)
                other.get_by_role("button", name="Show where").click()
                assert other.locator(".map-caption").inner_text().strip() == describe(_served_map(classifier, photo))
            quiet = card(page, quiet_photo.name)
            quiet.get_by_role("button", name="Show where").click()
            assert "little fire evidence" in quiet.locator(".map-caption").inner_text()

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"web-fire-map-{name}.png"), full_page=True)

            toggle.focus()
            page.keyboard.press("Space")
            assert toggle.get_attribute("aria-pressed") == "false" and overlay.is_hidden()
        finally:
            context.close()
        assert not problems, f"browser console errors (CSP violations show up here): {problems}"
