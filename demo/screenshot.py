"""``python -m demo.screenshot``: the README's screenshot, taken from `make demo` itself.

Starts ``python -m demo`` with its own bucket, puts a few real photos under ``uploads/`` (the serverless path: the
panel on the right), checks two more through the page (the web target: the cards on the left), and saves what
Chromium shows. The photos come from the shared data sets (``FIREWATCH_DATASETS``); without them it says so and
stops. Chromium is Debian's package, driven by Playwright: no browser is downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .child import READY, ROOT, ChildDemo, DemoFailed

DATASETS = Path(os.environ.get("FIREWATCH_DATASETS", ROOT.parent / "shared" / "datasets"))
BUCKET = "firewatch-uploads"  # the demo's own default
VIEWPORT = {"width": 1280, "height": 860}
# (data set file, name it is uploaded as): put in the bucket first, so the newest (last) shows on top
THROUGH_THE_BUCKET = [
    ("weather/nofire/sunrise1.jpg", "sunrise.jpg"),
    ("houses/nofire/house_100_kitchen.jpg", "kitchen.jpg"),
    ("fire-dataset/fire/fire.1.jpg", "house-fire.jpg"),
    ("forest-fire/train/nofire/nofire_0001.jpg", "forest.jpg"),
    ("forest-fire/train/fire/fire_0010.jpg", "wildfire.jpg"),
]
THROUGH_THE_PAGE = [
    ("forest-fire/train/fire/fire_0001.jpg", "hillside-fire.jpg"),
    ("forest-fire/train/nofire/nofire_0010.jpg", "woods.jpg"),
]


class ScreenshotError(RuntimeError):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m demo.screenshot", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--output", type=Path, default=ROOT / "docs" / "screenshot.png",
                   help="where to save the PNG (default docs/screenshot.png)")
    p.add_argument("--datasets", type=Path, default=DATASETS,
                   help="folder of the real photos (default ../shared/datasets, or $FIREWATCH_DATASETS)")
    return p


def photos(datasets: Path, chosen: list[tuple[str, str]]) -> list[tuple[Path, str]]:
    missing = [relative for relative, _ in chosen if not (datasets / relative).is_file()]
    if missing:
        raise ScreenshotError(f"the real photos are not there: {', '.join(missing)} not found under {datasets} "
                              "(set FIREWATCH_DATASETS or --datasets to the data sets folder)")
    return [(datasets / relative, name) for relative, name in chosen]


def take(output: Path, datasets: Path) -> None:
    bucket_photos, page_photos = photos(datasets, THROUGH_THE_BUCKET), photos(datasets, THROUGH_THE_PAGE)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise ScreenshotError("chromium is not installed (sudo apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    demo = ChildDemo()
    try:
        demo.read_until(READY, timeout=180, echo=True)
        s3 = demo.client("s3")
        for path, name in bucket_photos:
            s3.put_object(Bucket=BUCKET, Key=f"uploads/{name}", Body=path.read_bytes())
            demo.read_until(f"uploads/{name} ->", timeout=60, echo=True)  # one at a time: the panel lists them newest first
            time.sleep(1.1)  # S3 times objects to the second: keep them apart
        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as folder:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--headless"])
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(demo.web_url + "/")
            page.wait_for_function("n => document.querySelectorAll('#pipeline .feed-item').length >= n",
                                   arg=len(bucket_photos), timeout=30_000)
            named = []
            for path, name in page_photos:
                named.append(Path(folder) / name)
                shutil.copy(path, named[-1])
            page.set_input_files("#image-input", [str(path) for path in named])
            page.wait_for_function(
                "n => document.querySelectorAll('#results .result').length === n"
                " && !document.querySelector('#results .result[data-state=pending]')", arg=len(named), timeout=30_000)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output), full_page=True)
            browser.close()
    finally:
        demo.stop()
    print(f"saved {output}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        take(args.output, args.datasets)
    except (ScreenshotError, DemoFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
