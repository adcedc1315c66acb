"""A student's path through a chapter: JupyterLab in a real browser.

The test starts JupyterLab on a free local port with a random token, opens a
chapter notebook in headless Chromium (Debian's package, driven by
Playwright), runs every cell through the Run menu, and checks that a known
output and the plot appear. A screenshot of the executed notebook is saved
under ``test-output/`` so that a failure can be looked at.

Chromium is installed with apt when it is missing and the test runs as
root; otherwise the test fails and says what to install. It never skips.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import notebook_tools as tools

NOTEBOOK = "02-custom-block.ipynb"
KNOWN_OUTPUT = "(2, 10)"
OUTPUT_DIR = tools.ROOT / "test-output"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SERVER_START_S = 90
RUN_ALL_S = 120


def find_chromium():
    """The path of Debian's Chromium, installing it with apt if needed."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() != 0:
        pytest.fail("Chromium is missing and this test is not running as root, "
                    "so it cannot install it. Run: sudo apt-get update && "
                    "sudo apt-get install -y chromium")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=900)
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


def write_quiet_config(home):
    """Config and settings that keep JupyterLab from reaching the network
    (news, update checks, the extension manager) and that render every
    cell, so outputs far down the notebook are in the page."""
    config = home / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "extension_manager": "readonly",
                   "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}))
    (config / "labconfig" / "page_config.json").write_text(json.dumps({
        "disabledExtensions": {
            "@jupyterlab/apputils-extension:announcements": True,
            "@jupyterlab/extensionmanager-extension:plugin": True}}))
    settings = home / "settings"
    for plugin, values in {
            "notebook-extension/tracker": {"windowingMode": "none"},
            "apputils-extension/notification": {"fetchNews": "false",
                                                "checkForUpdates": False}}.items():
        folder, name = plugin.split("/")
        path = settings / "@jupyterlab" / folder / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return {"JUPYTER_CONFIG_DIR": str(config),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime")}


def api(base, token, path, method="GET"):
    """Call the server's REST API; returns the decoded JSON (or None)."""
    request = urllib.request.Request(
        f"{base}{path}", method=method,
        headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def stop_process_group(proc, grace_s=15):
    """SIGTERM the whole group of ``proc``, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


@pytest.fixture
def lab(tmp_path):
    """A running JupyterLab on a copy of the chapters; yields
    ``(base_url, token)`` and stops the server and its kernels afterwards."""
    root = tmp_path / "chapters"
    root.mkdir()
    for path in tools.chapter_notebooks():
        shutil.copy(path, root / path.name)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, **write_quiet_config(tmp_path / "jupyter"))
    log = open(tmp_path / "lab.log", "w")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
           "--ServerApp.open_browser=False", "--ServerApp.ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")     # CI runs as root in a throwaway machine
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n"
                            f"{(tmp_path / 'lab.log').read_text()[-3000:]}")
            try:
                api(base, token, "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within "
                                f"{SERVER_START_S} s:\n"
                                f"{(tmp_path / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        try:
            for kernel in api(base, token, "/api/kernels") or []:
                api(base, token, f"/api/kernels/{kernel['id']}", "DELETE")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass      # the server is gone already; its group is killed below
        stop_process_group(proc)
        log.close()


def test_student_runs_a_chapter_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    base, token = lab
    chromium = find_chromium()
    OUTPUT_DIR.mkdir(exist_ok=True)
    shot = OUTPUT_DIR / f"lab-{NOTEBOOK.replace('.ipynb', '')}.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 2000})
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}",
                      wait_until="domcontentloaded", timeout=60_000)
            notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            notebook.locator(".jp-Cell").first.wait_for(timeout=60_000)
            # "Run All" before the kernel is connected runs nothing, so wait
            # until the status bar names the kernel and calls it idle.
            page.locator(".jp-StatusBar-Widget",
                         has_text=re.compile(r"\(ipykernel\) \| Idle")) \
                .first.wait_for(timeout=60_000)

            page.locator(".lm-MenuBar-itemLabel",
                         has_text=re.compile(r"^Run$")).first.click()
            page.locator(".lm-Menu-itemLabel",
                         has_text=re.compile(r"^Run All Cells$")) \
                .first.click()

            image = notebook.locator(".jp-OutputArea-output img")
            image.first.wait_for(timeout=RUN_ALL_S * 1000)
            # Every cell has finished when no prompt shows "[*]".
            page.wait_for_function(
                """() => {
                    const prompts = [...document.querySelectorAll(
                        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt')];
                    return prompts.length > 0 &&
                        prompts.every(p => !p.textContent.includes('*'));
                }""", timeout=RUN_ALL_S * 1000)
            image.first.scroll_into_view_if_needed()
            text = notebook.inner_text()

            assert KNOWN_OUTPUT in text
            assert "Traceback (most recent call last)" not in text
            assert image.count() >= 1
            size = image.first.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert size[0] > 200 and size[1] > 100, size
            executed = notebook.locator(".jp-InputPrompt").all_inner_texts()
            assert all("[ ]" not in p for p in executed), executed
        finally:
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    assert shot.stat().st_size > 10_000
