"""A student's path through a chapter: JupyterLab in a real browser.

The test starts JupyterLab on a free local port with a random token, opens a
chapter notebook in headless Chromium (Debian's package, driven by
Playwright), runs every cell through the Run menu, and checks that a known
output and the plot appear. A screenshot of the executed notebook is saved
under ``test-output/`` so that a failure can be looked at.

Chromium is installed with apt when it is missing and the test runs as
root; otherwise the test fails and says what to install. It never skips.

One Chromium serves every test of this file (each in a browser context of
its own), and one JupyterLab serves every test that runs a chapter; the
course cycle has a JupyterLab of its own, set up for nbgrader.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import notebook_tools as tools
from browser_tools import (api, find_chromium, free_port, replace_cell_text,
                           stop_process_group, wait_for_server)

NOTEBOOK = "02-custom-block.ipynb"
KNOWN_OUTPUT = "(2, 10)"
OUTPUT_DIR = tools.ROOT / "test-output"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# Generous: each is only reached when something is wrong, and a 2-core
# machine may be running another test's kernels and a grader meanwhile.
SERVER_START_S = 180
RUN_ALL_S = 300
STEP_S = 180           # the most any one step may take on a busy machine

pytestmark = pytest.mark.slow


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


@contextlib.contextmanager
def running_lab(root, home, nbgrader_config=None):
    """JupyterLab serving ``root``, with its settings under ``home`` (and
    ``nbgrader_config``, the text of an nbgrader config, there too);
    yields ``(base_url, token)`` and stops the server and its kernels
    afterwards."""
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, **write_quiet_config(home))
    if nbgrader_config:
        # nbgrader reads the Jupyter config folder, in the server and in
        # every tool it starts.
        (home / "config" / "nbgrader_config.py").write_text(nbgrader_config)
    # nbgrader starts `alembic` and kernels by name: this venv first.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable),
                                   env.get("PATH", "")])
    log_path = home / "lab.log"
    log = open(log_path, "w")
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
        wait_for_server(proc, base, token, log_path, "JupyterLab",
                        SERVER_START_S)
        yield base, token
    finally:
        try:
            for kernel in api(base, token, "/api/kernels") or []:
                api(base, token, f"/api/kernels/{kernel['id']}", "DELETE")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass      # the server is gone already; its group is killed below
        stop_process_group(proc)
        log.close()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the tests of this file; each test opens
    a context of its own (its own cookies and storage) and closes it."""
    from playwright.sync_api import sync_playwright
    chromium = find_chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def new_page(browser, height):
    """A page in a fresh browser context, closed afterwards."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    try:
        yield context.new_page()
    finally:
        context.close()


def test_student_runs_a_chapter_in_jupyterlab(chapter_lab, browser):
    base, token = chapter_lab
    OUTPUT_DIR.mkdir(exist_ok=True)
    shot = OUTPUT_DIR / f"lab-{NOTEBOOK.replace('.ipynb', '')}.png"
    with new_page(browser, 2000) as page:
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}",
                      wait_until="domcontentloaded", timeout=STEP_S * 1000)
            notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            notebook.locator(".jp-Cell").first.wait_for(timeout=STEP_S * 1000)
            # "Run All" before the kernel is connected runs nothing, so wait
            # until the status bar names the kernel and calls it idle.
            page.locator(".jp-StatusBar-Widget",
                         has_text=re.compile(r"\(ipykernel\) \| Idle")) \
                .first.wait_for(timeout=STEP_S * 1000)

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
    assert shot.stat().st_size > 10_000


# ---- the course cycle: student and instructor in the browser -----------------
ASSIGNMENT = "layers_and_blocks"
# A MySequential that keeps its blocks in a list: it runs, but the tests
# of parameters(), state_dict(), to() ... fail, each with a reason.
LIST_ANSWER_CODE = '''class MySequential(nn.Block):
    """Runs its blocks in order, kept in a plain list."""

    def __init__(self, *blocks):
        super().__init__()
        self.parts = list(blocks)

    def forward(self, X):
        for block in self.parts:
            X = block(X)
        return X
'''
WRITTEN = ("A list is not registered, so parameters(), state_dict() and "
           "to() never see the blocks in it.")


def _demo_module():
    import importlib.util
    path = tools.ROOT / "exercises" / "instructor_demo.py"
    spec = importlib.util.spec_from_file_location("instructor_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def goto(page, url):
    """Open ``url``, once more if the first load fails or times out."""
    from playwright.sync_api import Error
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=STEP_S * 1000)
    except Error:
        page.goto(url, wait_until="domcontentloaded", timeout=STEP_S * 1000)


def open_menu(page, menu, item):
    """Click ``menu`` > ``item`` in JupyterLab's menu bar."""
    page.locator(".lm-MenuBar-itemLabel",
                 has_text=re.compile(f"^{menu}$")).first.click()
    page.locator(".lm-Menu-itemLabel",
                 has_text=re.compile(f"^{item}$")).first.click()


def wait_for_file(pattern, folder, what):
    """The files matching ``pattern`` under ``folder``, waiting for them."""
    deadline = time.monotonic() + STEP_S
    while not (found := sorted(folder.glob(pattern))):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: nothing matched {pattern} under {folder}")
        time.sleep(0.5)
    return found


def _nbgrader_settings(folders):
    return "\n".join([
        "c = get_config()  # noqa: F821",
        f"c.CourseDirectory.root = {str(folders['course'])!r}",
        "c.CourseDirectory.course_id = 'd2lblocks'",
        f"c.Exchange.root = {str(folders['exchange'])!r}",
        f"c.Exchange.assignment_dir = {str(folders['student'])!r}",
        f"c.Exchange.cache = {str(folders['cache'])!r}", ""])


def test_course_cycle_in_jupyterlab(tmp_path, browser):
    from nbgrader.api import Gradebook

    demo = _demo_module()
    folders = {name: tmp_path / name for name in
               ("course", "exchange", "student", "cache", "jupyter")}
    course, student_dir = folders["course"], folders["student"]
    demo.copy_course(course)
    demo.release(course)
    folders["exchange"].mkdir()
    student_dir.mkdir()
    where = f"--Exchange.root={folders['exchange']}"
    demo.nbgrader(course, "release_assignment", ASSIGNMENT, where)
    settings = _nbgrader_settings(folders)
    OUTPUT_DIR.mkdir(exist_ok=True)

    def shot(page, name):
        page.screenshot(path=str(OUTPUT_DIR / f"cycle-{name}.png"),
                        full_page=True)

    home = folders["jupyter"]
    with running_lab(tmp_path, home, settings) as (base, token), \
            new_page(browser, 1400) as page:
        page.set_default_timeout(STEP_S * 1000)
        try:
            # -- the student fetches the assignment in the Assignment List
            goto(page, f"{base}/lab?token={token}")
            open_menu(page, "Nbgrader", "Assignment List")
            page.locator("#released_assignments_list button",
                         has_text="Fetch").first.click()
            page.locator("#fetched_assignments_list",
                         has_text=ASSIGNMENT).wait_for()
            shot(page, "1-fetched")

            # -- fills in part A and the written answer of exercise 1
            path = f"student/{ASSIGNMENT}/ex1_sequential.ipynb"
            goto(page, f"{base}/lab/tree/{path}?token={token}")
            notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            page.locator(".jp-StatusBar-Widget",
                         has_text=re.compile(r"\(ipykernel\) \| Idle")) \
                .first.wait_for()
            code_cell = notebook.locator(".jp-CodeCell", has_text=re.compile(
                r"class MySequential\(nn\.Block\)")).first
            replace_cell_text(page, code_cell, LIST_ANSWER_CODE)
            answer = notebook.locator(".jp-MarkdownCell",
                                      has_text="YOUR ANSWER HERE").first
            answer.scroll_into_view_if_needed()
            answer.dblclick()
            replace_cell_text(page, answer, WRITTEN)
            page.keyboard.press("Shift+Enter")     # render the answer
            notebook.locator(".jp-MarkdownCell", has_text=WRITTEN).wait_for()
            page.keyboard.press("Escape")
            page.keyboard.press("Control+S")
            # Validate saves too; wait for this save to finish first.
            page.wait_for_function(
                "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current"
                ".jp-mod-dirty')", timeout=STEP_S * 1000)

            # -- validates: the list version fails the visible tests
            # (the Assignment List has hidden Validate buttons of its own)
            page.locator("button:visible, jp-button:visible",
                         has_text=re.compile(r"^\s*Validate\s*$")).first.click()
            page.locator(".jp-Dialog").first.wait_for()
            changed = page.locator(".jp-Dialog", has_text="File Changed")
            if changed.count():     # two saves within the disk's clock tick
                changed.locator("button", has_text="Overwrite").click()
            dialog = page.locator(".jp-Dialog", has_text="Validation Results")
            dialog.wait_for()
            shot(page, "2-validated")
            assert "The following cell failed" in dialog.inner_text()
            dialog.locator(".jp-Dialog-button").last.click()
            saved = json.loads((student_dir / path.split("/", 1)[1]).read_text())
            assert any("self.parts = list(blocks)" in "".join(c["source"])
                       for c in saved["cells"])

            # -- submits
            goto(page, f"{base}/lab?token={token}")
            open_menu(page, "Nbgrader", "Assignment List")
            page.locator("#fetched_assignments_list button",
                         has_text="Submit").first.click()
            page.locator("#submitted_assignments_list .list_item").first \
                .wait_for()
            shot(page, "3-submitted")

            # -- the instructor collects and grades with autograde
            demo.nbgrader(course, "collect", ASSIGNMENT, where)
            student = [p.name for p in (course / "submitted").iterdir()]
            assert len(student) == 1
            student = student[0]
            demo.nbgrader(course, "grade", ASSIGNMENT, tool="autograde")
            report = json.loads((course / "reports" / ASSIGNMENT /
                                 f"{student}.json").read_text())
            ex1 = next(nb for nb in report["notebooks"]
                       if nb["notebook"] == "ex1_sequential.ipynb")
            failed = [t for t in ex1["tests"] if t["status"] != "passed"]
            assert failed and all(t["message"] for t in failed), ex1["tests"]

            # -- hand-grades the written answer in formgrader
            url = f"sqlite:///{course / 'gradebook.db'}"
            with Gradebook(url) as gb:
                nb_id = gb.find_submission_notebook(
                    "ex1_sequential", ASSIGNMENT, student).id
            goto(page, f"{base}/formgrader/submissions/{nb_id}/?token={token}")
            # The page shows the auto scores (as placeholders) once its
            # grades have loaded; a value typed before that is lost.
            page.wait_for_function(
                "() => document.querySelector('input.score#test_seq_forward')"
                "?.placeholder", timeout=STEP_S * 1000)
            score = page.locator("input.score#list_answer")
            score.scroll_into_view_if_needed()
            score.fill("1.5")
            score.press("Tab")
            comment = page.locator("textarea#list_answer-comment")
            comment.fill("Good; say why the dict registers them.")
            comment.press("Tab")
            deadline = time.monotonic() + STEP_S
            while True:
                with Gradebook(url) as gb:
                    grade = gb.find_grade("list_answer", "ex1_sequential",
                                          ASSIGNMENT, student)
                    manual = grade.manual_score
                if manual == 1.5 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            shot(page, "4-formgrader")
            assert manual == 1.5

            # -- generates and releases feedback
            demo.nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
            demo.nbgrader(course, "feedback", ASSIGNMENT, tool="autograde")
            demo.nbgrader(course, "release_feedback", ASSIGNMENT, where)

            # -- the student fetches it and reads why a test failed
            goto(page, f"{base}/lab?token={token}")
            open_menu(page, "Nbgrader", "Assignment List")
            page.locator("#submitted_assignments_list button",
                         has_text="Fetch Feedback").first.click()
            page_file = wait_for_file(
                f"{ASSIGNMENT}/feedback/*/ex1_sequential.html", student_dir,
                "Fetch Feedback")[0]
            shot(page, "5-feedback-fetched")
            rel = page_file.relative_to(tmp_path).as_posix()
            goto(page, f"{base}/files/{rel}?token={token}")
            page.locator(".autograde-feedback").first.wait_for()
            text = page.locator("body").inner_text()
            shot(page, "6-feedback")
            assert "autograde: why each test passed or failed" in text
            assert failed[0]["message"].splitlines()[0] in text
            assert "graded by hand" in text and "1.5 / 2" in text
            assert "### BEGIN HIDDEN TESTS" not in text
        except Exception:
            shot(page, "failure")
            raise


# ---- the later chapters and the block display -------------------------------
# The chapters of the builders' tools after part 5.1 (07 onwards) run clean
# in the browser; each must show the first text its prose promises.
LATER_CHAPTERS = [p.name for p in tools.chapter_notebooks()
                  if int(p.name[:2]) >= 7]
DISPLAY_NOTEBOOK = "display-check.ipynb"
DISPLAY_CODE = '''import d2lblocks as db
from d2lblocks import nn


class Holder(nn.Block):
    """A lazy layer, an eager one, and a layer kept in a plain list."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Dense(16, activation='relu'),
                                  nn.Linear(16, 4))
        self.extra = [nn.Linear(4, 2)]

    def forward(self, X):
        return self.extra[0](self.body(X))


Holder()'''


@pytest.fixture(scope="module")
def chapter_lab(tmp_path_factory):
    """One JupyterLab for the later chapters and a notebook that shows a
    block: ``(base_url, token)``."""
    import nbformat
    tmp = tmp_path_factory.mktemp("chapters-lab")
    root = tmp / "chapters"
    root.mkdir()
    for path in tools.chapter_notebooks():
        shutil.copy(path, root / path.name)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(tools.KERNELSPEC)}
    nb.cells = [nbformat.v4.new_code_cell(DISPLAY_CODE)]
    nbformat.write(nb, root / DISPLAY_NOTEBOOK)
    with running_lab(root, tmp / "jupyter") as server:
        yield server


def run_all_in_lab(page, base, token, name):
    """Open notebook ``name``, run every cell from the Run menu and wait
    until each code cell has an execution count; returns the notebook.

    Every notebook gets a clean start: the sessions of earlier ones are
    shut down, and ``reset`` makes JupyterLab forget their tabs (a
    restored tab would ask which kernel to start).
    """
    for session in api(base, token, "/api/sessions") or []:
        api(base, token, f"/api/sessions/{session['id']}", method="DELETE")
    goto(page, f"{base}/lab/tree/{name}?reset&token={token}")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    notebook.locator(".jp-Cell").first.wait_for(timeout=STEP_S * 1000)
    # JupyterLab asks which kernel to start only when it cannot tell; the
    # kernel is idle only once it has one: wait for whichever comes.
    chooser = page.locator(".jp-Dialog", has_text="Select Kernel").first
    idle = page.locator(".jp-StatusBar-Widget",
                        has_text=re.compile(r"\(ipykernel\) \| Idle")).first
    chooser.or_(idle).first.wait_for(timeout=STEP_S * 1000)
    if chooser.is_visible():
        chooser.locator(".jp-Dialog-button", has_text="Select").first.click()
    idle.wait_for(timeout=STEP_S * 1000)
    open_menu(page, "Run", "Run All Cells")
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll(
                '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 &&
                prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""", timeout=RUN_ALL_S * 1000)
    return notebook


def _first_claim(name):
    """The first printed text that chapter ``name`` promises."""
    for cell in tools.read(tools.CHAPTERS / name).cells:
        for claim in cell.metadata.get("expect", []):
            if isinstance(claim, str):
                return claim
    raise AssertionError(f"{name} checks no printed text")


@pytest.mark.parametrize("name", LATER_CHAPTERS)
def test_later_chapter_runs_clean_in_jupyterlab(chapter_lab, browser, name):
    base, token = chapter_lab
    OUTPUT_DIR.mkdir(exist_ok=True)
    shot = OUTPUT_DIR / f"lab-{name.replace('.ipynb', '')}.png"
    with new_page(browser, 2000) as page:
        try:
            notebook = run_all_in_lab(page, base, token, name)
            text = notebook.inner_text()
            assert "Traceback (most recent call last)" not in text
            assert not notebook.locator(".jp-OutputArea-output[data-mime-type="
                                        "'application/vnd.jupyter.stderr']").count()
            assert _first_claim(name) in text
        finally:
            page.screenshot(path=str(shot), full_page=True)


def test_block_display_renders_in_jupyterlab(chapter_lab, browser):
    base, token = chapter_lab
    OUTPUT_DIR.mkdir(exist_ok=True)
    shot = OUTPUT_DIR / "lab-block-display.png"
    with new_page(browser, 1400) as page:
        try:
            notebook = run_all_in_lab(page, base, token, DISPLAY_NOTEBOOK)
            output = notebook.locator(".jp-OutputArea-output").first
            tree = output.locator("details").first
            tree.wait_for(timeout=STEP_S * 1000)
            summaries = output.locator("summary").all_inner_texts()
            # the root, its child body, and body's two layers
            assert summaries[0].startswith("Holder()"), summaries
            assert any(s.startswith("body: Sequential") for s in summaries)
            assert any(s.startswith("0: Dense(16") for s in summaries)
            assert any(s.startswith("1: Linear(in_features=16") for s in summaries)
            # shapes of a created parameter, and the lazy one marked
            for text in ("(4, 16)", "(16, ?)", "not yet created", "float32"):
                cell = output.locator("td", has_text=text).first
                assert cell.is_visible(), text
            # the list-held layer, in a warning colour, with the fix
            warning = output.locator("div", has_text="extra[0]").last
            assert warning.is_visible()
            assert "nn.BlockList" in warning.inner_text()
            colour = warning.evaluate("e => getComputedStyle(e).backgroundColor")
            assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour
            # clicking a summary folds its branch
            body = output.locator("summary", has_text="body: Sequential").first
            body.click()
            assert not output.locator("td", has_text="(4, 16)").first.is_visible()
        finally:
            page.screenshot(path=str(shot), full_page=True)
