"""A minimal client of Firefox's Marionette protocol (what geckodriver speaks), enough to drive a page.

Firefox is started headless with a fresh profile whose ``user.js`` sets ``marionette.port`` to 0 (a free
port, written by Firefox to ``MarionetteActivePort`` in the profile) and downloads to a folder without
asking. Messages are ``<length>:<JSON>``; commands are ``[0, id, name, params]``, answers
``[1, id, error, result]``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

PREFS = {
    "marionette.port": 0,
    "browser.download.folderList": 2,
    "browser.download.useDownloadDir": True,
    "browser.download.always_ask_before_handling_new_types": False,
    "browser.download.start_downloads_in_tmp_dir": False,
    "browser.download.manager.showWhenStarting": False,
    "browser.helperApps.neverAsk.saveToDisk": "text/csv",
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "app.update.enabled": False,
    "network.proxy.type": 0,
}
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class MarionetteError(RuntimeError):
    """Firefox answered a command with an error."""


class Firefox:
    """A headless Firefox with a Marionette session (use as a context manager)."""

    def __init__(self, executable: str, profile: Path, downloads: Path, timeout: float = 60.0):
        profile.mkdir(parents=True, exist_ok=True)
        downloads.mkdir(parents=True, exist_ok=True)
        prefs = {**PREFS, "browser.download.dir": str(downloads)}
        (profile / "user.js").write_text("".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n"
                                                 for k, v in prefs.items()))
        self.process = subprocess.Popen([executable, "--headless", "--marionette", "--no-remote", "--profile",
                                         str(profile), "about:blank"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.sock = socket.create_connection(("127.0.0.1", self._port(profile, timeout)), timeout=timeout)
        self.stream = self.sock.makefile("rb")
        self.next_id = 0
        self._read()  # the server's hello
        self.command("WebDriver:NewSession", {"capabilities": {}})

    def _port(self, profile: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        path = profile / "MarionetteActivePort"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MarionetteError(f"firefox exited with code {self.process.returncode}")
            if path.is_file() and path.read_text().strip():
                return int(path.read_text())
            time.sleep(0.1)
        raise MarionetteError("firefox did not open its Marionette port in time")

    def _read(self) -> Any:
        size = b""
        while (c := self.stream.read(1)) != b":":
            if not c:
                raise MarionetteError("connection closed")
            size += c
        return json.loads(self.stream.read(int(size)))

    def command(self, name: str, params: dict | None = None) -> Any:
        self.next_id += 1
        data = json.dumps([0, self.next_id, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        _, _, error, result = self._read()
        if error:
            raise MarionetteError(f"{name}: {error}")
        return result.get("value", result) if isinstance(result, dict) else result

    def navigate(self, url: str) -> None:
        self.command("WebDriver:Navigate", {"url": url})

    def script(self, body: str, *args: Any) -> Any:
        return self.command("WebDriver:ExecuteScript", {"script": body, "args": list(args)})

    def click(self, css: str) -> None:
        """A real (trusted) click on the first element matching ``css``."""
        element = self.command("WebDriver:FindElement", {"using": "css selector", "value": css})
        self.command("WebDriver:ElementClick", {"id": element[ELEMENT]})

    def close(self) -> None:
        try:
            self.command("Marionette:Quit", {"flags": ["eForceQuit"]})
        except (MarionetteError, OSError):
            pass
        self.sock.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Firefox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
