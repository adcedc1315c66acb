"""What the tests that start a Jupyter server or a browser share: finding
Chromium, a free port, the server's REST API, waiting for a server to
answer, stopping a process group, and typing into a notebook cell."""

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest


def _installed_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def find_chromium():
    """The path of Debian's Chromium, installing it with apt if needed
    (only root can). Test processes running side by side install it one
    at a time (apt takes one at a time)."""
    path = _installed_chromium()
    if path:
        return path
    if os.geteuid() != 0:
        pytest.fail("Chromium is missing and this test is not running as root, "
                    "so it cannot install it. Run: sudo apt-get update && "
                    "sudo apt-get install -y chromium")
    lock = os.path.join(tempfile.gettempdir(), "d2lblocks-tests-chromium.lock")
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        path = _installed_chromium()      # installed while this one waited
        if path:
            return path
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update"],
                    ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(cmd, env=env, capture_output=True,
                                  text=True, timeout=1200)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}):\n"
                            f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    path = shutil.which("chromium")
    if not path:
        pytest.fail("apt-get installed chromium but no 'chromium' is on PATH")
    return path


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(base, token, path, method="GET", body=None, timeout=30):
    """Call a Jupyter server's REST API; returns the decoded JSON (or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}{path}", method=method, data=data,
        headers={"Authorization": f"token {token}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else None


def wait_for_server(proc, base, token, log_path, what, limit_s):
    """Wait until the server started by ``proc`` answers ``/api/status``;
    fail with the end of its log if it exits or stays silent for
    ``limit_s`` seconds."""
    deadline = time.monotonic() + limit_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n"
                        f"{log_path.read_text()[-4000:]}")
        try:
            api(base, token, "/api/status", timeout=5)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not answer within {limit_s} s:\n"
                            f"{log_path.read_text()[-4000:]}")
            time.sleep(0.5)


def stop_process_group(proc, grace_s=20):
    """SIGTERM the whole group of ``proc``, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def replace_cell_text(page, cell, text):
    """Put ``text`` into ``cell``'s editor in place of what is there."""
    editor = cell.locator(".cm-content").first
    editor.click()
    page.keyboard.press("Control+A")
    # insert_text types no keys, so the editor adds no indentation or
    # closing brackets of its own.
    page.keyboard.insert_text(text)
