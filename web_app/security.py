"""The security headers every response carries: the app's own and the server's own error responses alike."""

from __future__ import annotations

import os
from typing import Mapping

# No inline script or style anywhere: the page's JS and CSS are static files.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",  # previews of the chosen photos are blob: URLs
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

# Strict-Transport-Security: only where the site is served over HTTPS alone (the stack sets FIREWATCH_HSTS=1 when a
# certificate is configured, and the load balancer then redirects HTTP to HTTPS). Browsers would keep refusing
# plain HTTP to the host for a year, so it must never be sent by a deployment without HTTPS. No includeSubDomains:
# the app does not own its parent domain's other hosts.
HSTS_ENV = "FIREWATCH_HSTS"
HSTS_HEADER = ("Strict-Transport-Security", "max-age=31536000")


def security_headers(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``SECURITY_HEADERS``, plus Strict-Transport-Security when ``FIREWATCH_HSTS`` is 1."""
    raw = environ.get(HSTS_ENV, "").strip()
    if raw not in ("", "0", "1"):
        raise ValueError(f"{HSTS_ENV} must be 1 (send Strict-Transport-Security) or 0, got {raw!r}")
    return {**SECURITY_HEADERS, **(dict([HSTS_HEADER]) if raw == "1" else {})}
