"""``make study``: a student's own folder and JupyterLab, as the README
describes them.

One ``make study`` (with a free port and a known token) fills a fresh
folder and starts JupyterLab; the tests then look at the folder, open a
terminal through the server's API as *File > New > Terminal* does (no
working folder given), and type the README's ``autograde check`` command
into it. The server runs without a TTY and its PATH lacks the virtualenv,
and the student's ``~/.bashrc`` resets PATH, as a login shell's
``/etc/profile`` would: the command must still be found, run in the study
folder, and check the notebook. The server's log must not show nbgrader's
config errors.
"""

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time

import pytest

import notebook_tools as tools
from browser_tools import api, free_port, wait_for_server
from browser_tools import stop_process_group as stop_group

ROOT = tools.ROOT
SOURCE = ROOT / "exercises" / "source"
STAMP = ".venv/.installed"
SERVER_START_S = 300          # make, study.py (nbgrader for every
                              # assignment) and JupyterLab, on a busy machine
COMMAND_S = 300               # one `autograde check` in the terminal
NBGRADER_ERRORS = ("No nbgrader_config.py file found",
                   "not a subdirectory of the notebook server root")

pytestmark = pytest.mark.slow


def readme_check_command():
    """The ``autograde check ...`` line of the README's self-study
    section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Self-study"):]
    match = re.search(r"^autograde check (\S+\.ipynb)$", section, re.M)
    assert match, "the README's self-study section names no check command"
    return match.group(0), match.group(1)


async def _terminal_session(url, token, command, done, timeout_s):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(url, headers={"Authorization": f"token {token}"})
    socket_ = await websocket_connect(request)
    out = []
    try:
        socket_.write_message(json.dumps(["stdin", command + "\r"]))
        deadline = time.monotonic() + timeout_s
        while not done.search("".join(out)):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                message = await asyncio.wait_for(socket_.read_message(), left)
            except asyncio.TimeoutError:
                break
            if message is None:
                break
            kind, *rest = json.loads(message)
            if kind == "stdout":
                out.append(rest[0])
    finally:
        socket_.close()
    return "".join(out)


def run_in_new_terminal(base, token, command, cwd=None, timeout_s=COMMAND_S):
    """Open a terminal as *File > New > Terminal* does (no ``cwd``; the
    file browser's *New Terminal* gives one), type ``command`` and return
    what the terminal shows up to the exit status, ``(text, status)``;
    the terminal is closed afterwards."""
    body = {} if cwd is None else {"cwd": cwd}
    name = api(base, token, "/api/terminals", "POST", body)["name"]
    try:
        # The typed line echoes "status=$?=", the shell prints the number.
        done = re.compile(r"status=(\d+)=")
        url = base.replace("http://", "ws://") + f"/terminals/websocket/{name}"
        text = asyncio.run(_terminal_session(
            url, token, f'{command}; echo "status=$?="', done, timeout_s))
    finally:
        api(base, token, f"/api/terminals/{name}", "DELETE")
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07|\r", "", text)
    match = done.search(text)
    assert match, f"the terminal did not finish within {timeout_s} s:\n{text}"
    return text, int(match.group(1))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``make study`` into a fresh folder: ``(folder, base_url, token,
    log_path, home)`` while JupyterLab runs."""
    if shutil.which("make") is None:
        pytest.fail("`make` is not installed; install it (apt-get install make)")
    tmp = tmp_path_factory.mktemp("study")
    folder, home = tmp / "study", tmp / "home"
    home.mkdir()
    # A student's shell setup that throws PATH away, as /etc/profile of a
    # login shell does.
    (home / ".bashrc").write_text("PATH=/usr/bin:/bin\n")
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "VIRTUAL_ENV", "MAKE"))}
    env.update(HOME=str(home), PATH="/usr/local/bin:/usr/bin:/bin")
    flags = (f"--ServerApp.ip=127.0.0.1 --ServerApp.port={port} "
             f"--ServerApp.port_retries=0 --IdentityProvider.token={token}")
    log_path = tmp / "make-study.log"
    # -o: never reinstall the virtualenv from here, even when
    # pyproject.toml is newer than its stamp.
    cmd = ["make", "--no-print-directory", "-o", STAMP, "study",
           f"STUDY={folder}", f"LAB_FLAGS={flags}"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(proc, base, token, log_path, "make study",
                        SERVER_START_S)
        yield folder, base, token, log_path, home
    finally:
        stop_group(proc)


def test_study_folder_holds_every_chapter_and_assignment(study):
    folder = study[0]
    chapters = sorted(p.name for p in (folder / "chapters").glob("*.ipynb"))
    assert chapters == [p.name for p in tools.chapter_notebooks()]
    names = sorted(p.name for p in SOURCE.iterdir()
                   if p.is_dir() and any(p.glob("*.ipynb")))
    assert names and sorted(
        p.name for p in (folder / "exercises").iterdir()) == names
    for name in names:
        released = sorted(p.name for p in (folder / "exercises" / name)
                          .glob("*.ipynb"))
        assert released == sorted(p.name for p in (SOURCE / name)
                                  .glob("*.ipynb")), name
        for path in (folder / "exercises" / name).glob("*.ipynb"):
            text = path.read_text()
            assert "### BEGIN SOLUTION" not in text, path
            assert "### BEGIN HIDDEN TESTS" not in text, path
    assert not (folder / "source").exists()
    assert (folder / "nbgrader_config.py").read_text() == \
        (ROOT / "exercises" / "nbgrader_config.py").read_text()


def test_readme_check_command_works_in_a_new_terminal(study):
    folder, base, token, log_path, _ = study
    command, notebook = readme_check_command()
    text, status = run_in_new_terminal(
        base, token, f"pwd; command -v autograde; {command}")
    # It ran in the study folder, found the venv's autograde, and checked
    # the notebook: the blank release fails its tests (status 1), and the
    # report says so and which written answer is still empty.
    assert str(folder.resolve()) in text.splitlines(), text
    assert str(ROOT / ".venv" / "bin" / "autograde") in text, text
    assert "command not found" not in text, text
    assert "expected a notebook file" not in text, text
    assert "Traceback (most recent call last)" not in text, text
    assert status == 1, text
    assert re.search(r"^\s*(ERROR|FAILED) ", text, re.M), text
    assert re.search(r"^\s*EMPTY ", text, re.M), text
    assert "passed their visible tests" in text, text
    assert (folder / notebook).is_file()
    log = log_path.read_text()
    for error in NBGRADER_ERRORS:
        assert error not in log, log[-4000:]


def test_relative_terminal_folder_is_inside_the_study_folder(study):
    """The file browser's "New Terminal" names its folder relative to the
    notebook root; ``exercises`` exists in the repository too, and must
    not be taken from there."""
    folder, base, token, _, _ = study
    text, status = run_in_new_terminal(base, token, "pwd", cwd="exercises")
    assert status == 0, text
    assert str(folder.resolve() / "exercises") in text.splitlines(), text


def test_study_keeps_its_own_saved_layout(study):
    """The layout JupyterLab saves goes into the study folder's settings,
    not into ``~/.jupyter``, where ``make lab`` would read it."""
    folder, base, token, _, home = study
    workspace = {"data": {"layout-restorer:data": {"main": None}},
                 "metadata": {"id": "study-check"}}
    api(base, token, "/lab/api/workspaces/study-check", "PUT", workspace)
    saved = list((folder / ".jupyter" / "workspaces").glob("study-check*"))
    assert len(saved) == 1, saved
    assert not list(home.glob(".jupyter/lab/workspaces/*"))


def test_lab_and_study_settings_are_apart(tmp_path):
    """``study.py --lab-config`` (``make lab``) writes settings with a
    layout folder of their own and an nbgrader config naming the
    notebook folder as the course root."""
    config = tmp_path / "lab-config"
    done = subprocess.run(
        [sys.executable, str(ROOT / "exercises" / "study.py"),
         "--lab-config", str(config), str(ROOT / "chapters")],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    settings = json.loads((config / "jupyter_server_config.json").read_text())
    assert settings["LabApp"]["workspaces_dir"] == str(config / "workspaces")
    shell = settings["ServerApp"]["terminado_settings"]["shell_command"]
    assert "-l" not in shell and "--login" not in shell
    nbconfig = (config / "nbgrader_config.py").read_text()
    assert repr(str(ROOT / "chapters")) in nbconfig
    bad = subprocess.run(
        [sys.executable, str(ROOT / "exercises" / "study.py"), "--lab-config"],
        capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr
