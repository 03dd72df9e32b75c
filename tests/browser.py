"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for the toolbar tests.

A few calls are all the tests need: open a page, evaluate JavaScript, wait until an expression
is true, click, type. No Selenium or Playwright: the protocol is JSON over a WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import json
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        # What the page said while the tests waited (console, uncaught errors, failed loads): a failed wait
        # shows the last of it, so a step that silently did nothing (a script not loaded, a rejected fetch)
        # is named in the failure instead of only "never true".
        self.events: collections.deque[str] = collections.deque(maxlen=60)

    def _note(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.events.append(f"console.{params.get('type')}: {text[:300]}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.events.append(f"uncaught: {str(text)[:300]}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("warning", "error"):
            entry = params["entry"]
            self.events.append(f"{entry.get('source')} {entry.get('level')}: {entry.get('text', '')[:200]}"
                               f" {entry.get('url', '')}".rstrip())

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self.ws.send_json({"id": message_id, "method": method, "params": params})
        async with asyncio.timeout(15):
            async for message in self.ws:
                data = json.loads(message.data)
                if "method" in data:
                    self._note(data)
                if data.get("id") == message_id:
                    if "error" in data:
                        raise RuntimeError(f"{method}: {data['error']}")
                    return dict(data.get("result", {}))
        raise RuntimeError("the browser closed the connection")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        said = "".join(f"\n  {line}" for line in self.events) or " nothing"
        raise AssertionError(f"never true in the page: {expression} (last value {value!r}); the page said:{said}")

    async def click(self, selector: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    async def fill(self, selector: str, value: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}")

    async def text(self, selector: str) -> str:
        return str(await self.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent ?? ''"))

    async def reload(self) -> None:
        """Reload the page (what reopening the tab does: session storage stays)."""
        await self.evaluate("window.cccBeforeReload = true")
        await self.send("Page.reload")
        await self.wait_for("window.cccBeforeReload === undefined && document.readyState === 'complete'")

    async def visible(self, selector: str) -> bool:
        """Whether the element takes space on the page (not hidden, not display: none)."""
        return bool(await self.evaluate(
            f"(document.querySelector({json.dumps(selector)})?.getClientRects().length ?? 0) > 0"))

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the page as it is drawn, for a person to look at."""
        await self.send("Page.bringToFront")  # a tab in the background draws no frame to capture
        shot = await self.send("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def glyphs_drawn(self, selector: str, text: str) -> dict[str, Any]:
        """Draws each character of `text` alone in the element's font on a canvas. Without a font
        that has them, Chinese characters all come out as the same empty box (.notdef): then the
        drawings are equal. Returns {"distinct": how many different drawings, "inked": how many
        have any pixel, "count": characters}."""
        script = """((selector, text) => {
          const font = getComputedStyle(document.querySelector(selector)).font;
          const draw = (ch) => {
            const canvas = document.createElement("canvas");
            canvas.width = 64; canvas.height = 64;
            const g = canvas.getContext("2d");
            g.font = font; g.textBaseline = "top"; g.fillStyle = "#000"; g.fillText(ch, 4, 4);
            return Array.from(g.getImageData(0, 0, 64, 64).data).join(",");
          };
          const drawings = [...text].map(draw);
          return {distinct: new Set(drawings).size, count: drawings.length,
                  inked: drawings.filter((d) => d.split(",").some((v) => v !== "0")).length};
        })"""
        return dict(await self.evaluate(f"{script}({json.dumps(selector)}, {json.dumps(text)})"))


    async def contrast_failures(self) -> list[dict[str, Any]]:
        """WCAG 2 contrast of the text as drawn: for every visible element with text of its own (and every
        visible input, select and placeholder), its computed colour over the background it sits on (the
        ancestors' background colours composited over white), against 4.5:1, or 3:1 for large text (24 px,
        or 18.66 px bold). Disabled controls are exempt (WCAG 1.4.3). Returns the failures."""
        return list(await self.evaluate(_CONTRAST_AUDIT))

    async def unlabelled_controls(self) -> list[str]:
        """Visible controls without an accessible name: a button with no text, aria-label or title; an
        input or select with no <label>, aria-label, aria-labelledby or title."""
        return list(await self.evaluate(_LABEL_AUDIT))

    async def controls_without_focus_ring(self, limit: int = 200) -> list[str]:
        """Tabs through the page with the keyboard (as a person would) and lists the focused controls that show
        no focus indicator (an outline of at least 2 px, or a box shadow). Returns [] once focus comes round."""
        missing: list[str] = []
        first = None
        await self.evaluate("document.activeElement && document.activeElement.blur(); true")
        for _ in range(limit):
            for kind in ("rawKeyDown", "keyUp"):
                await self.send("Input.dispatchKeyEvent", type=kind, key="Tab", code="Tab",
                                windowsVirtualKeyCode=9, nativeVirtualKeyCode=9)
            focused = await self.evaluate(_FOCUS_PROBE)
            if focused is None:
                continue
            if focused["id"] == first:
                break
            first = first or focused["id"]
            if not focused["ring"]:
                missing.append(focused["id"])
        return missing


_CONTRAST_AUDIT = r"""(() => {
  const parse = (c) => { const m = /rgba?\(([^)]+)\)/.exec(c || ""); if (!m) return null;
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const background = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255, 1]); };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");
  const disabled = (el) => el.closest(":disabled, [aria-disabled=true]") !== null;
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility === "visible";
  const failures = [];
  const check = (el, color, text) => {
    const style = getComputedStyle(el), bg = background(el), fg = over(parse(color), bg);
    const [a, b] = [lum(fg), lum(bg)], ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
    const needed = large ? 3 : 4.5;
    if (ratio < needed) failures.push({element: name(el), text: text.slice(0, 40), color, needed,
      ratio: Math.round(ratio * 100) / 100, background: `rgb(${bg.slice(0, 3).map(Math.round).join(", ")})`});
  };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement, text = node.textContent.trim();
    if (!text || !el || seen.has(el) || el.closest("script, style, option, select")) continue;
    seen.add(el);
    if (shown(el) && !disabled(el)) check(el, getComputedStyle(el).color, text);
  }
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!shown(el) || disabled(el)) continue;
    const value = el.tagName === "SELECT" ? (el.selectedOptions[0]?.textContent || "") : el.value;
    if (value) check(el, getComputedStyle(el).color, value);
    else if (el.placeholder) check(el, getComputedStyle(el, "::placeholder").color, el.placeholder);
  }
  return failures;
})()"""

_LABEL_AUDIT = r"""(() => [...document.querySelectorAll("button, input:not([type=hidden]), select, textarea")]
  .filter((el) => el.getClientRects().length > 0)
  .filter((el) => {
    const own = (el.getAttribute("aria-label") || el.getAttribute("title") || "").trim();
    const by = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean)
      .map((id) => document.getElementById(id)?.textContent || "").join("").trim();
    const labels = [...(el.labels || [])].map((l) => l.textContent).join("").trim();
    const text = el.tagName === "BUTTON" ? el.textContent.trim() : "";
    return !(own || by || labels || text);
  })
  .map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.name ? `[name=${el.name}]` : "")))()"""

_FOCUS_PROBE = r"""(() => { const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const ring = (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2) || style.boxShadow !== "none";
  const id = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.name ? `[name=${el.name}]` : "") +
    (el.dataset.tab ? `[data-tab=${el.dataset.tab}]` : "") + ":" + [...document.querySelectorAll("*")].indexOf(el);
  return {id, ring}; })()"""


#: A browser phone's Chromium: a fake microphone (a beep) allowed without asking, remote audio played without a
#: click, and WebRTC over the loopback (the tests' network namespace has nothing else).
WEBRTC_ARGS = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
               "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection")


class Browser:
    def __init__(self, *extra_args: str) -> None:
        self.extra_args = extra_args
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="ccc-chromium-")
        self.process: asyncio.subprocess.Process | None = None
        self.http = aiohttp.ClientSession()

    async def __aenter__(self) -> Browser:
        self.process = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--remote-debugging-port={self.port}", f"--user-data-dir={self.profile}", *self.extra_args, "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                async with self.http.get(f"http://127.0.0.1:{self.port}/json/version") as response:
                    if response.status == 200:
                        return self
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError("chromium did not start")

    async def open(self, url: str) -> Page:
        async with self.http.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as response:
            target = await response.json(content_type=None)
        ws = await self.http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        await page.send("Runtime.enable")  # console messages and uncaught errors, for a failed wait's message
        await page.send("Log.enable")  # the browser's own: failed loads, refused requests
        await page.send("Page.navigate", url=url)
        await page.wait_for("location.href !== 'about:blank' && document.readyState === 'complete'")
        return page

    async def __aexit__(self, *exc: object) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await self.http.close()
        shutil.rmtree(self.profile, ignore_errors=True)
