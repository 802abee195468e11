"""The report in a real browser: headless Chromium, driven over the DevTools protocol, opens
report.html from the run directory; every image must decode, no script error or console error
may appear, every table must have rows, the page must not scroll sideways, and a full-page
screenshot is saved beside the report (report.png).

Chromium is Debian's `chromium` package. When it is missing, scripts/ensure_chromium.sh installs
it (apt-get, as root); when that cannot be done the test fails and says so: the check is
required, never skipped.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from alignlab.report import REPORT_NAME, write_report
from test_report import build_run

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("ALIGNLAB_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium reaches for Google's hosts at start-up.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]
TIMEOUT = 60.0

# What the page looks like to a reader: images decoded, tables with rows, sideways scrolling.
PROBE = """(() => ({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth})),
  tables: Array.from(document.querySelectorAll('table')).map(t => ({
      caption: t.caption ? t.caption.textContent : t.rows[0] && t.rows[0].textContent.slice(0, 60),
      bodyRows: Array.from(t.tBodies).reduce((n, b) => n + b.rows.length, 0)})),
  sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
}))()"""


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not os.access(CHROMIUM, os.X_OK):
        done = subprocess.run(["bash", str(ROOT / "scripts" / "ensure_chromium.sh")], capture_output=True,
                              text=True, timeout=900)
        if done.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
            pytest.fail(f"headless Chromium is required for the report's browser check and {CHROMIUM} could "
                        f"not be installed (scripts/ensure_chromium.sh exited {done.returncode}):\n"
                        f"{done.stderr[-2000:]}", pytrace=False)
    return CHROMIUM


class DevTools:
    """A minimal DevTools-protocol client over aiohttp's websocket: commands by id, events kept."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id, self.events = ws, 0, []
        self.pending: dict[int, asyncio.Future] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, TIMEOUT)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def wait_for(self, method: str, session: str) -> None:
        start = len(self.events)
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events[start:]):
            await asyncio.sleep(0.05)

    def errors(self, session: str) -> list[str]:
        out = []
        for e in self.events:
            if e.get("sessionId") != session:
                continue
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')} "
                           f"{(p['exceptionDetails'].get('exception') or {}).get('description', '')}")
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p['args']]}")
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out


async def _inspect(browser_ws: str, pages: list[tuple[Path, int, Path | None]]) -> list[dict[str, Any]]:
    """Open each (html file, window width, screenshot path) in its own tab; what each page shows."""
    import aiohttp

    results = []
    async with aiohttp.ClientSession() as http, http.ws_connect(browser_ws, max_msg_size=0) as ws:
        tools = DevTools(ws)
        for html, width, screenshot in pages:
            target = (await tools.send("Target.createTarget", url="about:blank"))["targetId"]
            session = (await tools.send("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                await tools.send(f"{domain}.enable", session)
            await tools.send("Emulation.setDeviceMetricsOverride", session, width=width, height=900,
                             deviceScaleFactor=1, mobile=False)
            loaded = asyncio.create_task(tools.wait_for("Page.loadEventFired", session))
            await tools.send("Page.navigate", session, url=html.resolve().as_uri())
            await asyncio.wait_for(loaded, TIMEOUT)
            probe = await tools.send("Runtime.evaluate", session, expression=PROBE, returnByValue=True)
            result = probe["result"]["value"]
            if screenshot:
                size = (await tools.send("Page.getLayoutMetrics", session))["cssContentSize"]
                shot = await tools.send("Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                                        clip={"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1})
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            await asyncio.sleep(0.2)  # late console messages
            result["errors"] = tools.errors(session)
            results.append(result)
            await tools.send("Target.closeTarget", targetId=target)
        tools.reader.cancel()
    return results


def open_in_chromium(chromium: Path, profile: Path, pages: list[tuple[Path, int, Path | None]]) -> list[dict]:
    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)  # a reused profile keeps the last browser's port
    log = open(profile.parent / "chromium.log", "wb")
    # Its own process group, so the browser and every helper process it forks end with it.
    proc = subprocess.Popen([str(chromium), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (profile.parent / "chromium.log").read_text(errors="replace")
                raise AssertionError(f"Chromium did not start; its log:\n{log_text[-2000:]}")
            time.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        return asyncio.run(asyncio.wait_for(_inspect(f"ws://127.0.0.1:{port}{path}", pages), 3 * TIMEOUT))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_report_renders_in_chromium(chromium, tmp_path):
    run = build_run(tmp_path)
    report = write_report(run)
    # A page with a broken image and a script error: the probe must see both, or it proves nothing.
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><img alt="x" src="data:image/png;base64,AAAA"><table><tbody></tbody></table>'
                      '<script>undefinedFunction()</script>')
    screenshot = run / "report.png"
    wide, narrow, bad = open_in_chromium(chromium, tmp_path / "profile", [
        (report, 1280, screenshot), (report, 420, None), (broken, 800, None)])

    assert bad["images"][0]["width"] == 0 and bad["tables"][0]["bodyRows"] == 0
    assert any("undefinedFunction" in e for e in bad["errors"])

    html_images = report.read_text().count("<img ")
    for page in (wide, narrow):
        assert page["errors"] == []
        assert page["sections"] == ["overview", "taxonomy", "funnel", "judges", "mixes", "training", "evaluation",
                                    "pairs", "final"]
        assert len(page["images"]) == html_images > 0
        assert [i for i in page["images"] if not (i["complete"] and i["width"] > 0)] == []
        assert page["tables"] and [t for t in page["tables"] if t["bodyRows"] == 0] == []
        assert page["overflow"] <= 0, "the page scrolls sideways: something is wider than the window"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(screenshot.read_bytes()[20:24], "big") > 2000  # full page, not one screen
    assert REPORT_NAME in os.listdir(run)
