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
