"""How tests read the upload page: its result cards, found the way a person finds them (by file name)."""

VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen: the results panel sits beside the upload area
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}  # browser context options


def wait_for_results(page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('#results .result').length === n"
        " && !document.querySelector('#results .result[data-state=pending]')",
        arg=count,
        timeout=20_000,
    )


def card(page, name: str):
    return page.locator("#results .result", has=page.locator(".result-name").get_by_text(name, exact=True))


def collect_problems(page, ignore_4xx: bool = False) -> list[str]:
    """A list that fills with the page's console errors and uncaught exceptions (CSP violations show up here).
    ``ignore_4xx``: the page's own API calls answered 4xx (a text file's 415) are expected, not problems."""
    problems: list[str] = []

    def on_console(message):
        expected = ignore_4xx and message.text.startswith("Failed to load resource: the server responded with a status of 4")
        if message.type == "error" and not expected:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems
