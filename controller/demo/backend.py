"""The demo CRM/billing back-end `make run` starts on 127.0.0.1:8090 (tests start it too).

It stands in for the systems a real center's IVR asks: a bill/balance inquiry (话费查询) and the
customer's tier. Answers are derived from the number so tests can predict them:

- GET /balance?number=N  → {"number", "name", "balance": "123.45", "due_date": "2026-12-01"}
  the balance is the number's last five digits read as fen (13800138000 → 380.00 → "380.00");
  numbers ending in 0000 answer HTTP 503 (a back-end failure for tests and demos).
- GET /customer?number=N → {"tier": "vip"} when the number ends in 8, else {"tier": "regular"}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from decimal import Decimal

from aiohttp import web


def balance_of(number: str) -> str:
    digits = "".join(ch for ch in number if ch.isdigit())[-5:] or "0"
    return str((Decimal(int(digits)) / 100).quantize(Decimal("0.01")))


def tier_of(number: str) -> str:
    return "vip" if number.endswith("8") else "regular"


async def balance(request: web.Request) -> web.Response:
    number = request.query.get("number", "")
    if not number:
        return web.json_response({"error": "number is required"}, status=400)
    if number.endswith("0000"):
        return web.json_response({"error": "billing system unavailable"}, status=503)
    return web.json_response({"number": number, "name": "张三", "balance": balance_of(number),
                              "due_date": "2026-12-01"})


async def customer(request: web.Request) -> web.Response:
    return web.json_response({"tier": tier_of(request.query.get("number", ""))})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app() -> web.Application:
    app = web.Application()
    app.add_routes([web.get("/balance", balance), web.get("/customer", customer), web.get("/healthz", healthz)])
    return app


async def serve(host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CCC_DEMO_BACKEND_PORT", "8090")))
    args = parser.parse_args()

    async def run() -> None:
        runner = await serve(args.listen, args.port)
        print(f"demo backend on http://{args.listen}:{args.port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
