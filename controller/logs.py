"""Logging: one line per record (text or JSON), callers' numbers masked unless asked.

Callers' numbers are personal data: code logs them through `mask_number`, which shows
138****8000 unless the configuration turns masking off for troubleshooting. Secrets are never
passed to the logger at all.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_show_numbers = False


def mask_number(number: str | None) -> str:
    """'13812348000' -> '138****8000'; short numbers (extensions) are shown as they are."""
    if not number:
        return "-"
    if _show_numbers or len(number) <= 6:
        return number
    keep_tail = 4 if len(number) >= 10 else 2
    return number[:3] + "*" * (len(number) - 3 - keep_tail) + number[-keep_tail:]


_SECRET_FIELD = re.compile(r"((?:secret|password|token)\s*[:=]\s*)[^\s'\\,;&]+", re.IGNORECASE)


class _RedactSecrets(logging.Filter):
    """A safety net for libraries: panoramisk, for one, logs a whole AMI action it could not send,
    the Login's `Secret:` included. Our own code never passes secrets to the logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_FIELD.sub(r"\1<redacted>", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", show_caller_numbers: bool = False) -> None:
    global _show_numbers
    _show_numbers = show_caller_numbers
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    handler.addFilter(_RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("panoramisk").setLevel(logging.INFO)  # its debug logs every AMI event (with numbers)
