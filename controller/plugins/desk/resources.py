"""The agent toolbar, the supervisor wallboard and the admin page: plain pages served by the controller.

The pages hold no data and need no token to load; everything they show comes from the API and
the /ws event stream with the token the user types in (kept in the browser's session storage),
so the usual roles apply: an agent's token sees and drives only that agent.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from controller.http.server import page

STATIC = Path(__file__).with_name("static")
FILES = {"toolbar.html": "text/html", "wallboard.html": "text/html", "admin.html": "text/html",
         "desk.js": "text/javascript", "admin.js": "text/javascript", "desk.css": "text/css"}


def routes() -> list[web.RouteDef]:
    @page
    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in FILES:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=FILES[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache", "X-Frame-Options": "DENY",
                                     "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    def redirect(request: web.Request, name: str) -> web.Response:
        query = f"?{request.query_string}" if request.query_string else ""
        return web.Response(status=302, headers={"Location": f"/desk/{name}{query}"})

    @page
    async def toolbar(request: web.Request) -> web.StreamResponse:
        return redirect(request, "toolbar.html")

    @page
    async def wallboard(request: web.Request) -> web.StreamResponse:
        return redirect(request, "wallboard.html")

    @page
    async def admin(request: web.Request) -> web.StreamResponse:
        return redirect(request, "admin.html")

    return [web.get("/desk/{name}", static), web.get("/toolbar", toolbar), web.get("/wallboard", wallboard),
            web.get("/admin", admin)]
