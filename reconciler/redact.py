"""Keep secrets out of every message: values of secret-looking environment variables are masked.

Libraries sometimes echo request headers or URLs with credentials into exception text; anything
vectorops prints about an unexpected error goes through ``redact`` first.
"""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD|ACCESS_KEY|CREDENTIALS)", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+@")


def secret_values() -> list[str]:
    values = [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 6]
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, extra: list[str] | None = None) -> str:
    for value in (extra or []) + secret_values():
        if value:
            text = text.replace(value, "***")
    return _URL_CREDENTIALS.sub("***@", text)
