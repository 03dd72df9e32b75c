"""Logs keep callers' numbers masked and secrets out, even when a library logs them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from controller import logs


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_numbers_are_masked_unless_asked() -> None:
    logs.setup_logging()
    assert logs.mask_number("13812348000") == "138****8000"
    assert logs.mask_number("8001") == "8001" and logs.mask_number(None) == "-"


def test_a_library_logging_an_ami_login_has_its_secret_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup_logging()
    logging.getLogger("panoramisk.ami_protocol").error(
        "Fail to send %r", "Action: Login\r\nUsername: ccc\r\nSecret: s3cr3t-ami\r\n")
    logging.getLogger("controller.test").warning("url %s", "http://h/ws?token=abc123&types=call.*")
    err = capsys.readouterr().err
    assert "s3cr3t-ami" not in err and "abc123" not in err, err
    assert "Secret: <redacted>" in err and "Username: ccc" in err and "types=call.*" in err
