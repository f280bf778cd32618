"""A small Chrome DevTools Protocol client for headless Chromium (tests and docs screenshots).

Starts Debian's `chromium` with a throw-away profile and every background service off, opens
pages in a fresh tab with the Network domain enabled *before* navigating, so every request a
page makes is recorded, and offers evaluate/screenshot. Only what the report tests need.
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import websocket  # websocket-client

FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers have a tiny /dev/shm
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-port=0",  # the port is read back from DevToolsActivePort
)
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")


class CDPError(RuntimeError):
    pass


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """`with Chromium(binary, profile_dir) as browser: page = browser.open(url)`."""

    def __init__(self, binary: str, profile_dir: Path, timeout: float = 60):
        self.binary, self.profile_dir, self.timeout = binary, Path(profile_dir), timeout
        self.events: list[dict] = []
        self._next_id = 0
        self.process = None
        self.ws = None

    def __enter__(self) -> "Chromium":
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self.profile_dir}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        port, path = self._wait_for_endpoint()
        # suppress_origin: Chromium refuses DevTools websockets that send an unexpected Origin.
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=self.timeout,
                                              suppress_origin=True)
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.ws is not None:
                self.send("Browser.close")
        except (CDPError, OSError, websocket.WebSocketException):
            pass  # the browser may already be gone; we kill it below anyway
        finally:
            if self.ws is not None:
                self.ws.close()
            if self.process is not None:
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)

    def _wait_for_endpoint(self) -> tuple[str, str]:
        marker = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CDPError(f"{self.binary} exited with code {self.process.returncode} before DevTools was up")
            lines = marker.read_text().splitlines() if marker.is_file() else []
            if len(lines) >= 2:
                return lines[0].strip(), lines[1].strip()
            time.sleep(0.1)
        raise CDPError(f"{self.binary}: no DevTools endpoint after {self.timeout} s")

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict:
        """The first event `method` of `session`, received now or earlier."""
        deadline = time.monotonic() + self.timeout
        seen = 0
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.events.append(json.loads(self.ws.recv()))
        raise CDPError(f"no {method} within {self.timeout} s")

    def open(self, url: str, width: int = 1440, height: int = 900) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Runtime"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        return Page(self, session, width)


class Page:
    def __init__(self, browser: Chromium, session: str, width: int):
        self.browser, self.session, self.width = browser, session, width

    def evaluate(self, expression: str):
        result = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                   session=self.session)
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r} threw: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def requested_urls(self) -> list[str]:
        """Every URL this page asked for, in order (documents, scripts, images, fetches ...)."""
        return [e["params"]["request"]["url"] for e in self.browser.events
                if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == self.session]

    def external_requests(self) -> list[str]:
        return [url for url in self.requested_urls() if not url.startswith(LOCAL_SCHEMES)]

    def screenshot(self, path: Path, *, selector: str | None = None, height: int | None = None) -> bytes:
        """PNG of the element `selector`, or of the top `height` pixels (default: the viewport)."""
        if selector is not None:
            box = self.evaluate(
                f"(function(){{var r=document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                "return {x:r.left+window.scrollX,y:r.top+window.scrollY,width:r.width,height:r.height};})()")
        else:
            full = self.evaluate("document.documentElement.scrollHeight")
            box = {"x": 0, "y": 0, "width": self.width, "height": min(height or full, full)}
        shot = self.browser.send("Page.captureScreenshot",
                                 {"format": "png", "captureBeyondViewport": True, "clip": {**box, "scale": 1}},
                                 session=self.session)
        data = base64.b64decode(shot["data"])
        Path(path).write_bytes(data)
        return data
