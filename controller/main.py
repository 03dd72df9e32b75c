"""`ccc-controller --config FILE`: run the controller until SIGTERM/SIGINT (SIGHUP reloads flows)."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Callable

from controller import instance
from controller.app import Controller
from controller.config import MIN_TOKEN_LENGTH, Config, load_config
from controller.http.server import start_http, tls_context
from controller.leadership import Leadership, leadership_problem, uses_leadership
from controller.logs import setup_logging
from controller.memtrace import MemoryTrace, frames_from_environment, not_tracing
from controller.settings import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccc-controller", description=__doc__)
    parser.add_argument("--config", "-c", default="/etc/ccc/controller.yaml", help="configuration file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except SettingsError as exc:
        print("configuration errors:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if not config.demo and (weak := config.weak_tokens()):
        print("refusing to start with guessable API tokens or passwords:", file=sys.stderr)
        for problem in weak:
            print(f"  {problem}", file=sys.stderr)
        print(f"set each token from the environment (e.g. CCC_ADMIN_TOKEN=$(openssl rand -hex 16)), at least "
              f"{MIN_TOKEN_LENGTH} characters; demo tokens are accepted only with `demo: true` (CCC_DEMO=true for "
              "demo/controller.yaml, as `make run` and the tests set)", file=sys.stderr)
        return 2
    if standby_problem := leadership_problem(config):
        print(f"configuration errors:\n  {standby_problem}", file=sys.stderr)
        return 2
    try:
        trace_frames = frames_from_environment()
    except ValueError as exc:
        print(f"ccc-controller: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.logging.level, config.logging.format, config.logging.show_caller_numbers)
    faulthandler.enable()  # a fatal signal (SIGBUS, SIGSEGV) leaves a traceback on stderr, not silence
    memory_trace = MemoryTrace(trace_frames, config.data_path) if trace_frames else None
    if memory_trace is not None:
        memory_trace.start()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(_run(config, memory_trace))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop (less CPU per call: README "Benchmarks"); asyncio's own with CCC_EVENT_LOOP=asyncio."""
    if os.environ.get("CCC_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


async def _run(config: Config, memory_trace: MemoryTrace | None = None) -> int:
    # SIGUSR2: an allocation report with CCC_TRACEMALLOC (README "Memory growth: tracemalloc"), else a hint
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR2, memory_trace.on_signal if memory_trace is not None else not_tracing)
    try:
        _lock = instance.InstanceLock(config.lock_path).acquire()  # one controller per data directory, while we run
        leadership = await _stand_by(config) if uses_leadership(config) else None
        if leadership is None and not uses_leadership(config):
            await instance.ensure_application_free(config)  # and per ARI application (the lease says it otherwise)
    except instance.AnotherController as exc:
        print(f"ccc-controller: not starting: {exc}", file=sys.stderr)
        return instance.EXIT_ANOTHER_CONTROLLER
    except OSError as exc:
        logging.getLogger("controller").error("cannot start: %s", exc)
        return 1
    if uses_leadership(config) and leadership is None:
        return 0  # stopped while standing by
    controller = Controller(config, leadership=leadership)
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


async def _stand_by(config: Config) -> Leadership | None:
    """Active/standby (README "Active/standby controllers"): answer HTTP with where the leader is until this
    process holds the lease; None when stopped (SIGTERM) meanwhile."""
    leadership = Leadership(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # (SIGHUP must not end a standby: `systemctl reload` reaches every host's unit.)
    loop.add_signal_handler(signal.SIGHUP, lambda: logging.getLogger("controller").info(
        "standing by: nothing to reload; the managed configuration is read from the store when this one leads,"
        " the file's at its start (restart it after changing the file)"))
    http = config.http
    runner = await start_http(leadership.standby_app(), http.listen, http.port,
                              tls_context(http.tls_cert, http.tls_key) if http.tls else None)
    logging.getLogger("controller").info("standing by (%s): the leader is watched in the store", leadership.holder)
    try:
        if await leadership.wait_until_leader(stop):
            return leadership
    finally:
        await runner.cleanup()  # the leader's own API takes the port
    await leadership.close()
    return None

if __name__ == "__main__":
    sys.exit(main())
