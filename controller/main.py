"""`ccc-controller --config FILE`: run the controller until SIGTERM/SIGINT (SIGHUP reloads flows)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from controller.app import Controller
from controller.config import Config, config_from_command_line
from controller.instance import EXIT_ANOTHER_CONTROLLER, AnotherController, InstanceLock, ensure_application_free
from controller.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    config = config_from_command_line("ccc-controller", __doc__, argv)
    if config is None:
        return 2
    setup_logging(config.logging.level, config.logging.format, config.logging.show_caller_numbers)
    try:
        lock = InstanceLock(config.lock_path).acquire()  # held until the process ends
    except AnotherController as exc:
        print(f"ccc-controller: not starting: {exc}", file=sys.stderr)
        return EXIT_ANOTHER_CONTROLLER
    try:
        return asyncio.run(_run(config))
    finally:
        lock.release()


async def _run(config: Config) -> int:
    try:
        await ensure_application_free(config)
    except AnotherController as exc:
        print(f"ccc-controller: not starting: {exc}", file=sys.stderr)
        return EXIT_ANOTHER_CONTROLLER
    controller = Controller(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, controller.stop)
    loop.add_signal_handler(signal.SIGHUP, controller.reload)
    try:
        await controller.run()
    except OSError as exc:
        logging.getLogger("controller").error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
