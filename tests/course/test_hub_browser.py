"""The course on a real JupyterHub, in a browser: one instructor and two
students, each a separate system account logging in through
``/hub/login``.

``hub/hub.py`` (``make hub``) sets the hub up with accounts of the test's
own, its own exchange and port. In headless Chromium (Debian's package,
driven by Playwright), each account logs in with its password, then:

* the instructor generates and releases the assignment in a terminal of
  their JupyterLab;
* each student fetches it in the Assignment List, writes exercise 1
  (one with the blocks in a plain list, one correct) and the written
  answer, validates and submits;
* the instructor collects, grades with ``autograde grade`` (as the
  instructor's own account, not root), gives the written answer a hand
  grade in formgrader, and writes and releases the feedback;
* each student fetches the feedback and finds autograde's reasons, their
  own, in the page.

The test needs root (it creates accounts); it is skipped with the reason
without root, ``useradd``, ``npm`` or ``node``. Accounts, servers and the
exchange are removed afterwards, also when the test fails; the hub's
virtual environment is kept for the next run (``make hub-clean`` removes
it).
"""

import contextlib
import importlib.util
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import notebook_tools as tools
from browser_tools import find_chromium, free_port, replace_cell_text

ROOT = tools.ROOT
HUB_SCRIPT = ROOT / "hub" / "hub.py"
OUTPUT_DIR = ROOT / "test-output"
ASSIGNMENT = "layers_and_blocks"
NOTEBOOK = "ex1_sequential"
INSTRUCTOR, STUDENTS = "d2lt-teacher", ["d2lt-ada", "d2lt-ben"]
PREFIX = "/srv/d2lblocks-hub-test"         # the test's exchange
VENV = "/srv/d2lblocks-hub/venv"            # shared with `make hub`
SETUP_S = 1800      # the first run builds the hub's environment
STEP_S = 300        # the most one step may take on a busy 2-core machine
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

# The terminal's text area (each terminal opens in a workspace of its
# own, where it is the only one).
TERMINAL = ".jp-Terminal .xterm"

pytestmark = pytest.mark.slow

# Exercise 1, part A: blocks kept in a plain list (runs, but the tests of
# parameters(), state_dict(), to() ... fail, each with a reason) and
# blocks registered as children (passes).
ANSWERS = {
    "d2lt-ada": '''class MySequential(nn.Block):
    """Runs its blocks in order, kept in a plain list."""

    def __init__(self, *blocks):
        super().__init__()
        self.parts = list(blocks)

    def forward(self, X):
        for block in self.parts:
            X = block(X)
        return X
''',
    "d2lt-ben": '''class MySequential(nn.Block):
    """Runs its blocks in order, each registered as a child."""

    def __init__(self, *blocks):
        super().__init__()
        for index, block in enumerate(blocks):
            self.add_module(str(index), block)

    def forward(self, X):
        for block in self._children.values():
            X = block(X)
        return X
'''}
WRITTEN = ("A list is not registered, so parameters(), state_dict() and "
           "to() never see the blocks in it.")


def _skip_reason():
    if os.geteuid() != 0:
        return "needs root: it creates system accounts for the hub"
    missing = [tool for tool in ("useradd", "userdel", "chpasswd", "npm",
                                 "node", "runuser")
               if shutil.which(tool) is None]
    if missing:
        return (f"missing {', '.join(missing)} (apt-get install passwd "
                "nodejs npm)")
    spec = importlib.util.spec_from_file_location("hub_script", HUB_SCRIPT)
    hub_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub_script)
    python = hub_script.default_python()
    if not hub_script._open_to_all(python):
        return ("no Python 3.11 that every account can run (the hub's "
                "environment needs one; apt-get install python3)")
    return None


def hub_command(*args, timeout=STEP_S):
    done = subprocess.run(
        [sys.executable, str(HUB_SCRIPT), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return done


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A running hub with the test's accounts: ``{"url", "passwords",
    "homes", "args"}``; everything but the environment is removed
    afterwards."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    for name in [INSTRUCTOR, *STUDENTS]:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if "d2lblocks hub account" not in entry.pw_gecos:
            pytest.fail(f"an account {name} exists that the test did not "
                        "make; remove it or rename the test's accounts")
    state = tmp_path_factory.mktemp("hub") / "state"
    port = free_port()
    args = ["--state", str(state), "--prefix", PREFIX, "--venv", VENV,
            "--accounts", ",".join([INSTRUCTOR, *STUDENTS]),
            "--port", str(port)]
    try:
        done = hub_command("start", *args, timeout=SETUP_S)
        if done.returncode != 0:
            pytest.fail(f"hub.py start failed ({done.returncode}):\n"
                        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        passwords = json.loads((state / "passwords.json").read_text())
        homes = {name: Path(pwd.getpwnam(name).pw_dir)
                 for name in passwords}
        yield {"url": f"http://127.0.0.1:{port}", "passwords": passwords,
               "homes": homes, "state": state}
    finally:
        log = state / "jupyterhub.log"
        if log.exists():
            OUTPUT_DIR.mkdir(exist_ok=True)
            shutil.copy(log, OUTPUT_DIR / "hub-jupyterhub.log")
        done = hub_command("clean", "--keep-venv", *args)
        assert done.returncode == 0, done.stdout + done.stderr


def test_hub_without_root_says_so():
    """``make hub`` as an ordinary user stops at once, says why, and
    exits non-zero (as root, the check runs as ``nobody``)."""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() \
        else sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        (Path(tmp) / "hub").mkdir()
        script = Path(tmp) / "hub" / "hub.py"
        shutil.copy(HUB_SCRIPT, script)
        os.chmod(script.parent, 0o755)
        os.chmod(script, 0o644)
        cmd = [python, str(script), "start", "--port", str(free_port())]
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("no runuser to run the check as an ordinary user")
            cmd = ["runuser", "-u", "nobody", "--"] + cmd
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the hub needs root" in done.stderr, done.stderr
    assert "Run it as root" in done.stderr


class Account:
    """One account's browser tab on the hub."""

    def __init__(self, browser, hub, name):
        self.name, self.hub = name, hub
        self.home = hub["homes"][name]
        self.base = f"{hub['url']}/user/{name}"
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 1400})
        self.context.set_default_timeout(STEP_S * 1000)
        self.page = self.context.new_page()
        self.terminal_ready = False
        self.terminals = 0

    def shot(self, step):
        OUTPUT_DIR.mkdir(exist_ok=True)
        self.page.screenshot(path=str(OUTPUT_DIR / f"hub-{step}-{self.name}.png"),
                             full_page=True)

    def goto(self, url):
        from playwright.sync_api import Error
        self.terminal_ready = False     # a new page has no terminal open
        try:
            self.page.goto(url, wait_until="domcontentloaded")
        except Error:
            self.page.goto(url, wait_until="domcontentloaded")

    def log_in(self):
        page = self.page
        self.goto(f"{self.hub['url']}/hub/login")
        page.fill("#username_input", self.name)
        page.fill("#password_input", self.hub["passwords"][self.name])
        page.click("#login_submit")
        # The hub starts the account's server, then sends the browser on
        # to its JupyterLab. A server can fail to start where the port the
        # hub picked for it was taken meanwhile (a busy machine starts
        # many servers and kernels): the hub's page then shows "Spawn
        # failed" on a red bar, and the account asks for a server once more.
        lab = page.locator(".jp-LabShell")
        failed = page.locator("#progress-bar.bg-danger")
        for attempt in (1, 2):
            lab.or_(failed).first.wait_for()
            if not failed.count():
                break
            self.shot(f"spawn-failed-{attempt}")
            if attempt == 2:
                pytest.fail(f"{self.name}: the hub could not start the "
                            f"server twice:\n{page.locator('body').inner_text()}")
            self.goto(f"{self.hub['url']}/hub/spawn")
        page.wait_for_url(re.compile(rf"/user/{re.escape(self.name)}/lab"))
        lab.wait_for()
        page.locator(".lm-MenuBar-itemLabel",
                     has_text=re.compile(r"^File$")).first.wait_for()

    def open_menu(self, menu, item):
        self.page.locator(".lm-MenuBar-itemLabel",
                          has_text=re.compile(f"^{menu}$")).first.click()
        self.page.locator(".lm-Menu-itemLabel",
                          has_text=re.compile(f"^{item}$")).first.click()

    # -- a terminal in the account's JupyterLab ---------------------------
    def _type(self, line):
        term = self.page.locator(TERMINAL).first
        term.click()
        self.page.keyboard.type(line)
        self.page.keyboard.press("Enter")

    def open_terminal(self):
        # A workspace of its own for each terminal: JupyterLab restores
        # no earlier tabs there, so this terminal is the only one.
        self.terminals += 1
        self.goto(f"{self.base}/lab/workspaces/terminal-{self.terminals}")
        self.page.locator(".jp-LabShell").wait_for()
        self.open_menu("File", "New")
        self.page.locator(".lm-Menu-itemLabel",
                          has_text=re.compile(r"^Terminal$")).first.click()
        self.page.locator(TERMINAL).first.wait_for()
        # Keys typed before the terminal's connection is up are lost:
        # type a harmless line until its file shows up.
        probe = self.home / f".hub-test-terminal-{self.terminals}"
        deadline = time.monotonic() + STEP_S
        while not probe.exists():
            if time.monotonic() > deadline:
                self.shot("terminal")
                pytest.fail(f"{self.name}: the terminal never ran a command")
            self._type(f"touch {probe}")
            wait_for(probe.exists, 15, fail=False)
        self.terminal_ready = True

    def run(self, step, command):
        """Type ``command`` into the terminal; wait until it ends; return
        ``(status, output)``, read from files the account writes."""
        if not self.terminal_ready:
            self.open_terminal()
        out = self.home / f".hub-test-{step}.log"
        status = self.home / f".hub-test-{step}.status"
        self._type(f"( {command} ) > {out} 2>&1; echo $? > {status}.part; "
                   f"mv {status}.part {status}")
        wait_for(status.exists, STEP_S, what=f"{self.name}: {command}")
        return int(status.read_text()), out.read_text()

    def close(self):
        self.context.close()


def wait_for(condition, seconds, what="", fail=True):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        if time.monotonic() > deadline:
            if fail:
                pytest.fail(f"{what}: not done within {seconds} s")
            return result
        time.sleep(0.5)
    return result


def student_works(student):
    """Fetch, answer exercise 1, validate and submit, in the browser."""
    page = student.page
    student.goto(f"{student.base}/lab")
    student.open_menu("Nbgrader", "Assignment List")
    page.locator("#released_assignments_list button",
                 has_text="Fetch").first.click()
    page.locator("#fetched_assignments_list", has_text=ASSIGNMENT).wait_for()
    fetched = student.home / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    assert fetched.stat().st_uid == pwd.getpwnam(student.name).pw_uid
    student.shot("1-fetched")

    student.goto(f"{student.base}/lab/tree/{ASSIGNMENT}/{NOTEBOOK}.ipynb")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    page.locator(".jp-StatusBar-Widget",
                 has_text=re.compile(r"\(ipykernel\) \| Idle")).first.wait_for()
    code_cell = notebook.locator(".jp-CodeCell", has_text=re.compile(
        r"class MySequential\(nn\.Block\)")).first
    replace_cell_text(page, code_cell, ANSWERS[student.name])
    answer = notebook.locator(".jp-MarkdownCell",
                              has_text="YOUR ANSWER HERE").first
    answer.scroll_into_view_if_needed()
    answer.dblclick()
    replace_cell_text(page, answer, WRITTEN)
    page.keyboard.press("Shift+Enter")
    notebook.locator(".jp-MarkdownCell", has_text=WRITTEN).wait_for()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+S")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current"
        ".jp-mod-dirty')", timeout=STEP_S * 1000)
    saved = json.loads(fetched.read_text())
    assert any(ANSWERS[student.name].splitlines()[3] in "".join(c["source"])
               for c in saved["cells"])

    page.locator("button:visible, jp-button:visible",
                 has_text=re.compile(r"^\s*Validate\s*$")).first.click()
    page.locator(".jp-Dialog").first.wait_for()
    changed = page.locator(".jp-Dialog", has_text="File Changed")
    if changed.count():
        changed.locator("button", has_text="Overwrite").click()
    dialog = page.locator(".jp-Dialog", has_text="Validation Results")
    dialog.wait_for()
    student.shot("2-validated")
    # The list answer fails visible tests; the registered one passes.
    expected = ("Success! Your notebook passes all the tests."
                if student.name == "d2lt-ben" else "The following cell failed")
    assert expected in dialog.inner_text()
    dialog.locator(".jp-Dialog-button").last.click()

    student.goto(f"{student.base}/lab")
    student.open_menu("Nbgrader", "Assignment List")
    page.locator("#fetched_assignments_list button",
                 has_text="Submit").first.click()
    page.locator("#submitted_assignments_list .list_item").first.wait_for()
    student.shot("3-submitted")


def test_course_cycle_on_jupyterhub(hub):
    from nbgrader.api import Gradebook
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    course = hub["homes"][INSTRUCTOR] / "course"
    with sync_playwright() as pw, contextlib.ExitStack() as stack:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        accounts = {}
        for name in [INSTRUCTOR, *STUDENTS]:
            accounts[name] = Account(browser, hub, name)
            stack.callback(accounts[name].close)
        teacher = accounts[INSTRUCTOR]
        current = teacher
        try:
            # -- each account logs in; each server runs as its account
            for account in accounts.values():
                current = account
                account.log_in()
            teacher.shot("0-logged-in")

            # -- the instructor generates and releases the assignment
            current = teacher
            status, out = teacher.run(
                "release", f"cd {course} && id -un && "
                f"nbgrader generate_assignment {ASSIGNMENT} --force && "
                f"nbgrader release_assignment {ASSIGNMENT}")
            assert status == 0, out
            assert out.splitlines()[0] == INSTRUCTOR, out

            # -- the students work in their own JupyterLab
            for name in STUDENTS:
                current = accounts[name]
                student_works(accounts[name])

            # -- the instructor collects and grades, as their own account
            current = teacher
            status, out = teacher.run(
                "collect", f"cd {course} && nbgrader collect {ASSIGNMENT}")
            assert status == 0, out
            assert sorted(p.name for p in (course / "submitted").iterdir()) \
                == sorted(STUDENTS), out
            status, out = teacher.run(
                "grade", f"cd {course} && autograde grade {ASSIGNMENT}")
            assert status == 0, out
            reports, failed = {}, {}
            teacher_uid = pwd.getpwnam(INSTRUCTOR).pw_uid
            for name in STUDENTS:
                path = course / "reports" / ASSIGNMENT / f"{name}.json"
                assert path.stat().st_uid == teacher_uid
                report = json.loads(path.read_text())
                ex1 = next(nb for nb in report["notebooks"]
                           if nb["notebook"] == f"{NOTEBOOK}.ipynb")
                reports[name] = ex1
                failed[name] = [t for t in ex1["tests"]
                                if t["status"] != "passed"]
            # The list answer fails tests of exercise 1, each with a
            # reason; the registered one passes them all.
            assert failed["d2lt-ada"], reports["d2lt-ada"]
            assert all(t["message"] for t in failed["d2lt-ada"])
            assert not failed["d2lt-ben"], reports["d2lt-ben"]
            url = f"sqlite:///{course / 'gradebook.db'}"
            with Gradebook(url) as gb:
                scores = {name: gb.find_submission_notebook(
                    NOTEBOOK, ASSIGNMENT, name).score for name in STUDENTS}
                nb_id = gb.find_submission_notebook(
                    NOTEBOOK, ASSIGNMENT, "d2lt-ada").id
            assert scores["d2lt-ben"] > scores["d2lt-ada"], scores

            # -- hand-grades the written answer in formgrader
            page = teacher.page
            teacher.goto(f"{teacher.base}/formgrader/submissions/{nb_id}/")
            page.wait_for_function(
                "() => document.querySelector('input.score#list_answer')",
                timeout=STEP_S * 1000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('input.score')]"
                ".some(i => i.placeholder)", timeout=STEP_S * 1000)
            score = page.locator("input.score#list_answer")
            score.scroll_into_view_if_needed()
            score.fill("1.5")
            score.press("Tab")
            comment = page.locator("textarea#list_answer-comment")
            comment.fill("Good; say why the dict registers them.")
            comment.press("Tab")

            def hand_grade():
                with Gradebook(url) as gb:
                    return gb.find_grade("list_answer", NOTEBOOK, ASSIGNMENT,
                                         "d2lt-ada").manual_score == 1.5
            wait_for(hand_grade, STEP_S, what="formgrader's hand grade")
            teacher.shot("4-formgrader")

            # -- writes and releases the feedback
            status, out = teacher.run(
                "feedback", f"cd {course} && "
                f"nbgrader generate_feedback {ASSIGNMENT} --force && "
                f"autograde feedback {ASSIGNMENT} && "
                f"nbgrader release_feedback {ASSIGNMENT}")
            assert status == 0, out

            # -- each student fetches it and reads their own reasons
            for name in STUDENTS:
                student = current = accounts[name]
                page = student.page
                student.goto(f"{student.base}/lab")
                student.open_menu("Nbgrader", "Assignment List")
                page.locator("#submitted_assignments_list button",
                             has_text="Fetch Feedback").first.click()
                found = wait_for(
                    lambda: sorted((student.home / ASSIGNMENT / "feedback")
                                   .glob(f"*/{NOTEBOOK}.html")),
                    STEP_S, what=f"{name}: Fetch Feedback")
                student.shot("5-feedback-fetched")
                rel = found[0].relative_to(student.home).as_posix()
                student.goto(f"{student.base}/files/{rel}")
                page.locator(".autograde-feedback").first.wait_for()
                text = page.locator("body").inner_text()
                student.shot("6-feedback")
                assert "autograde: why each test passed or failed" in text
                assert "### BEGIN HIDDEN TESTS" not in text
                for test in reports[name]["tests"]:
                    if test["status"] != "passed":
                        assert test["message"].splitlines()[0] in text
                if name == "d2lt-ada":
                    assert "graded by hand" in text and "1.5 / 2" in text
                    assert "Good; say why the dict registers them." in text
        except Exception:
            with contextlib.suppress(Exception):
                current.shot("failure")
            raise
