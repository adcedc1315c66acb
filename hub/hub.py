"""A multi-user course on JupyterHub: one instructor, two students.

``python hub/hub.py COMMAND`` (``make hub``, ``make hub-stop``,
``make hub-clean``), as root:

* ``start``: set up (below) and start JupyterHub in the background;
  prints its address, the accounts and where their passwords are.
* ``setup``: only the set-up:
  - a virtual environment of its own (``/srv/d2lblocks-hub/venv``, made
    with the system's Python, which every account can run) with
    JupyterHub 6.1, nbgrader, JupyterLab and this project;
  - ``configurable-http-proxy`` from npm in ``build/hub/node_modules``;
  - the accounts (``useradd``), each with a generated password
    (``chpasswd``; the passwords are in ``build/hub/passwords.json``,
    readable by root only);
  - the exchange, a folder every account can write to
    (``/srv/d2lblocks-hub/exchange``), and nbgrader's settings for all
    accounts in the environment's ``etc/jupyter``;
  - the instructor's course in ``~/course`` (the course's
    ``nbgrader_config.py`` and ``source/``), found by formgrader through
    ``~/.jupyter/nbgrader_config.py``; the students' JupyterLab hides
    formgrader and Create Assignment.
* ``stop``: stops the hub by its own process id (the hub stops the
  students' and the instructor's servers and the proxy), then anything
  still running as one of the accounts.
* ``clean``: ``stop``, then removes the accounts with their homes, the
  exchange, the environment (not with ``--keep-venv``) and ``build/hub``.
* ``status``: whether the hub runs, and where.

Options (before or after the command): ``--port`` (8000), ``--ip``
(127.0.0.1), ``--state`` (``build/hub``), ``--prefix``
(``/srv/d2lblocks-hub``), ``--venv`` (``PREFIX/venv``), ``--accounts``
(``d2l-instructor,d2l-student1,d2l-student2``: the instructor first),
``--python`` (the first of this Python, ``/usr/bin/python3`` and
``/usr/local/bin/python3`` that is 3.11 or later and that every account
can run).
"""

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COURSE_ID = "d2lblocks"
JUPYTERHUB = "jupyterhub==6.1.1"
ACCOUNTS = ("d2l-instructor", "d2l-student1", "d2l-student2")
# Written into each account's GECOS field: only such accounts are ever
# changed or removed here.
MARK = "d2lblocks hub account"
STUDENT_HIDDEN = ["@jupyter/nbgrader:formgrader",
                  "@jupyter/nbgrader:create-assignment",
                  "@jupyter/nbgrader:course-list"]
START_S = 120


class HubError(Exception):
    """A step that cannot be done, with what to do about it."""


def say(text):
    print(f"hub: {text}", flush=True)


def run(cmd, **kwargs):
    """Run ``cmd``; raise HubError with its output when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise HubError(f"{' '.join(map(str, cmd))} failed "
                       f"({done.returncode}):\n{done.stdout}{done.stderr}")
    return done


class Hub:
    """Paths and names of one hub (see the module's docstring)."""

    def __init__(self, state="build/hub", prefix="/srv/d2lblocks-hub",
                 venv=None, accounts=ACCOUNTS, ip="127.0.0.1", port=8000,
                 python=None):
        self.state = (REPO / state).resolve()
        self.prefix = Path(prefix).resolve()
        self.venv = Path(venv).resolve() if venv else self.prefix / "venv"
        self.exchange = self.prefix / "exchange"
        self.accounts = list(accounts)
        if len(self.accounts) < 2:
            raise HubError("give an instructor and at least one student")
        self.instructor, self.students = self.accounts[0], self.accounts[1:]
        self.ip, self.port = ip, int(port)
        self.python = python or default_python()
        self.settings = self.state / "settings.json"
        self.passwords = self.state / "passwords.json"
        self.pid_file = self.state / "jupyterhub.pid"
        self.log = self.state / "jupyterhub.log"
        self.proxy = self.state / "node_modules" / ".bin" / \
            "configurable-http-proxy"

    @property
    def url(self):
        return f"http://{self.ip}:{self.port}"

    # -- checks --------------------------------------------------------
    def require_root(self):
        if os.geteuid() != 0:
            raise HubError(
                "the hub needs root: it creates accounts (useradd, chpasswd) "
                "and JupyterHub starts each account's server as that "
                "account. Run it as root (sudo make hub).")
        missing = [tool for tool in ("useradd", "userdel", "chpasswd",
                                     "npm", "node")
                   if shutil.which(tool) is None]
        if missing:
            raise HubError(
                f"missing: {', '.join(missing)}. On Debian or Ubuntu: "
                "apt-get install passwd nodejs npm")

    # -- set-up ----------------------------------------------------------
    def setup(self):
        self.require_root()
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o700)
        self.make_venv()
        self.install_proxy()
        for name in self.accounts:
            self.make_account(name)
        self.check_python_for(self.students[0])
        self.set_passwords()
        self.make_exchange()
        self.write_shared_config()
        self.write_instructor_files()
        for name in self.students:
            self.write_student_files(name)

    def make_venv(self):
        python = self.venv / "bin" / "python"
        if not python.exists():
            if not Path(self.python).exists():
                raise HubError(f"no Python at {self.python}; give one that "
                               "every account can run with --python")
            say(f"creating the hub's environment in {self.venv}")
            self.venv.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.venv.parent, 0o755)
            run([self.python, "-m", "venv", "--without-pip", str(self.venv)])
        # This interpreter's pip installs into the new environment
        # (--python), so the system's Python needs no pip of its own.
        stamp = self.venv / ".d2lblocks-deps"
        wanted = JUPYTERHUB + "\n" + (REPO / "pyproject.toml").read_text()
        pip = [sys.executable, "-m", "pip", "--python", str(python),
               "install", "--quiet", "--disable-pip-version-check"]
        # The library and the grader as they are now, built from a copy
        # (nothing is written into the checkout) and not editable: the
        # accounts need not read this checkout.
        source = self.state / "src"
        if source.exists():
            shutil.rmtree(source)
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, source / name)
        for name in ("d2lblocks", "autograde"):
            shutil.copytree(REPO / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        if not stamp.exists() or stamp.read_text() != wanted:
            say("installing JupyterHub, JupyterLab, nbgrader and d2lblocks "
                "(a few minutes the first time)")
            run(pip + [JUPYTERHUB, f"{source}[course]"])
            stamp.write_text(wanted)
        else:
            say("updating d2lblocks in the hub's environment")
            run(pip + ["--no-deps", "--force-reinstall", str(source)])
        shutil.rmtree(source)
        run(["chmod", "-R", "a+rX", str(self.venv)])

    def install_proxy(self):
        if self.proxy.exists():
            return
        say("installing configurable-http-proxy with npm")
        shutil.copy2(HERE / "package.json", self.state / "package.json")
        run(["npm", "install", "--omit=dev", "--no-audit", "--no-fund",
             "--loglevel=error"], cwd=self.state)
        if not self.proxy.exists():
            raise HubError(f"npm install left no {self.proxy}")

    def make_account(self, name):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            say(f"creating the account {name}")
            run(["useradd", "--create-home", "--shell", "/bin/bash",
                 "--comment", MARK, name])
            return
        if entry.pw_gecos.split(",")[0] != MARK:
            raise HubError(f"an account {name} exists and was not made for "
                           "the hub; give other names with --accounts")

    def check_python_for(self, name):
        done = subprocess.run(
            ["runuser", "-u", name, "--", str(self.venv / "bin" / "python"),
             "-c", "import jupyterhub, nbgrader, d2lblocks, autograde"],
            capture_output=True, text=True, cwd="/")
        if done.returncode != 0:
            raise HubError(
                f"the account {name} cannot run the hub's Python "
                f"({self.venv}, made from {self.python}): {done.stderr}"
                "Every folder above it must be readable by all; give another "
                "--prefix or --python.")

    def set_passwords(self):
        known = {}
        if self.passwords.exists():
            known = json.loads(self.passwords.read_text())
        passwords = {name: known.get(name) or secrets.token_urlsafe(12)
                     for name in self.accounts}
        lines = "".join(f"{name}:{word}\n" for name, word in passwords.items())
        run(["chpasswd"], input=lines)
        fd = os.open(self.passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(passwords, out, indent=1)

    def make_exchange(self):
        self.exchange.mkdir(parents=True, exist_ok=True)
        os.chmod(self.prefix, 0o755)
        # Everyone writes, nobody removes another's files (like /tmp);
        # nbgrader sets the permissions of the course's folders inside.
        os.chmod(self.exchange, 0o1777)

    def write_shared_config(self):
        """Settings in the environment's etc/jupyter: read by every
        account's JupyterLab and nbgrader."""
        etc = self.venv / "etc" / "jupyter"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "nbgrader_config.py").write_text(
            "# Written by hub/hub.py: the exchange of the hub's course.\n"
            "c = get_config()  # noqa: F821\n"
            f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
            f"c.Exchange.root = {str(self.exchange)!r}\n")
        # (The files in jupyter_server_config.d only enable extensions;
        # other settings there are not read.)
        (etc / "jupyter_server_config.json").write_text(
            json.dumps({
                "LabApp": {"news_url": None,
                           "check_for_updates_class":
                               "jupyterlab.NeverCheckForUpdate"},
                # not a login shell: /etc/profile would drop the hub's
                # environment from PATH (autograde, nbgrader)
                "ServerApp": {"terminado_settings":
                              {"shell_command": ["/bin/bash"]}}}, indent=1))
        (etc / "labconfig").mkdir(exist_ok=True)
        (etc / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {
                "@jupyterlab/apputils-extension:announcements": True}},
            indent=1))
        run(["chmod", "-R", "a+rX", str(etc)])

    def _home(self, name):
        return Path(pwd.getpwnam(name).pw_dir)

    def _give(self, name, *paths):
        for path in paths:
            run(["chown", "-R", f"{name}:", str(path)])

    def write_instructor_files(self):
        home = self._home(self.instructor)
        course = home / "course"
        if not course.exists():
            course.mkdir()
            shutil.copy2(REPO / "exercises" / "nbgrader_config.py",
                         course / "nbgrader_config.py")
            shutil.copytree(REPO / "exercises" / "source", course / "source")
        config = home / ".jupyter"
        config.mkdir(exist_ok=True)
        # formgrader reads the config of the server's folder (home) and of
        # the config path, not the course's: point it there.
        (config / "nbgrader_config.py").write_text(
            "# Written by hub/hub.py: the instructor's course.\n"
            "c = get_config()  # noqa: F821\n"
            f"load_subconfig({str(course / 'nbgrader_config.py')!r})  "
            "# noqa: F821\n"
            f"c.CourseDirectory.root = {str(course)!r}\n")
        self._give(self.instructor, course, config)

    def write_student_files(self, name):
        config = self._home(name) / ".jupyter"
        (config / "labconfig").mkdir(parents=True, exist_ok=True)
        (config / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {p: True for p in STUDENT_HIDDEN}},
            indent=1))
        (config / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {
                "nbgrader.server_extensions.formgrader": False}}}, indent=1))
        self._give(name, config)

    # -- running -----------------------------------------------------------
    def pid(self):
        """The hub's process id, if it runs."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return pid if b"jupyterhub" in cmdline else None

    def start(self):
        self.setup()
        if self.pid():
            say(f"already running (process {self.pid()}) at {self.url}")
            return
        ports = free_ports(2, exclude={self.port})
        self.settings.write_text(json.dumps({
            "ip": self.ip, "port": self.port, "hub_port": ports[0],
            "proxy_api_port": ports[1], "state": str(self.state),
            "venv": str(self.venv), "proxy": str(self.proxy),
            "accounts": self.accounts}, indent=1))
        env = dict(os.environ, D2L_HUB_SETTINGS=str(self.settings),
                   CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(32),
                   PATH=os.pathsep.join([str(self.venv / "bin"),
                                         "/usr/local/bin", "/usr/bin",
                                         "/bin", "/usr/sbin", "/sbin"]))
        for key in ("VIRTUAL_ENV", "PYTHONPATH", "JUPYTER_CONFIG_DIR",
                    "JUPYTER_CONFIG_PATH", "JUPYTER_DATA_DIR"):
            env.pop(key, None)
        say(f"starting JupyterHub at {self.url} (log: {self.log})")
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                [str(self.venv / "bin" / "jupyterhub"), "-f",
                 str(HERE / "jupyterhub_config.py")],
                cwd=self.state, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                raise HubError(f"JupyterHub exited ({proc.returncode}):\n"
                               + self.log.read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{self.url}/hub/api",
                                            timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise HubError(f"JupyterHub did not answer within {START_S} "
                               "s:\n" + self.log.read_text()[-3000:])
            time.sleep(1)
        say(f"running (process {proc.pid}): open {self.url}/hub/login")
        say(f"instructor: {self.instructor}; students: "
            f"{', '.join(self.students)}; passwords: {self.passwords} "
            "(root only)")
        say("stop it with `make hub-stop`; `make hub-clean` also removes "
            "the accounts")

    def stop(self):
        pid = self.pid()
        if pid:
            say(f"stopping JupyterHub (process {pid})")
            stop_pid(pid, grace_s=60)
        # The proxy, by the process id the hub recorded, if it outlived it.
        proxy_pid = self.state / "jupyterhub-proxy.pid"
        try:
            pid = int(proxy_pid.read_text())
            if b"configurable-http-proxy" in \
                    Path(f"/proc/{pid}/cmdline").read_bytes():
                stop_pid(pid)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass
        # Servers and terminals the hub left behind run as the accounts.
        for name in self.accounts:
            try:
                uid = pwd.getpwnam(name).pw_uid
            except KeyError:
                continue
            for pid in processes_of(uid):
                stop_pid(pid, grace_s=5)
        self.pid_file.unlink(missing_ok=True)

    def clean(self, keep_venv=False):
        if os.geteuid() != 0:
            raise HubError("removing the hub's accounts needs root")
        self.stop()
        for name in self.accounts:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            if entry.pw_gecos.split(",")[0] != MARK:
                say(f"kept {name}: not an account made for the hub")
                continue
            say(f"removing the account {name} and its home")
            run(["userdel", "--remove", name])
        for path in (self.exchange, self.state) + (
                () if keep_venv else (self.venv,)):
            if path.exists():
                say(f"removing {path}")
                shutil.rmtree(path)
        if self.prefix.exists() and not any(self.prefix.iterdir()):
            self.prefix.rmdir()

    def status(self):
        pid = self.pid()
        say(f"running (process {pid}) at {self.url}" if pid
            else "not running")
        return 0 if pid else 3


def _open_to_all(path):
    """Whether every account can run ``path``: it and each folder above
    it are executable by others."""
    path = Path(path)
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def default_python():
    """A Python 3.11 or later that every account can run (a venv's
    Python is a link to it), or ``/usr/bin/python3`` when none is
    found (the set-up then says what is wrong)."""
    candidates = [getattr(sys, "_base_executable", ""), "/usr/bin/python3",
                  "/usr/local/bin/python3"]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        real = Path(candidate).resolve()
        if not _open_to_all(real):
            continue
        done = subprocess.run(
            [str(real), "-c", "import sys, venv; "
             "sys.exit(sys.version_info < (3, 11))"],
            capture_output=True)
        if done.returncode == 0:
            return str(real)
    return "/usr/bin/python3"


def free_ports(count, exclude=()):
    ports = set()
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            ports.add(port)
    return sorted(ports)


def processes_of(uid):
    """The process ids of ``uid``'s processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except FileNotFoundError:
                pass
    return found


def stop_pid(pid, grace_s=15):
    """SIGTERM ``pid``, then SIGKILL if it is still there after
    ``grace_s``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            # reap it if it is our child; otherwise only look
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _zombie(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] \
            == "Z"
    except (FileNotFoundError, IndexError):
        return True


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="hub.py", description="A multi-user course on JupyterHub.")
    parser.add_argument("command",
                        choices=["setup", "start", "stop", "clean", "status"])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--state", default="build/hub")
    parser.add_argument("--prefix", default="/srv/d2lblocks-hub")
    parser.add_argument("--venv", default=None)
    parser.add_argument("--python", default=None,
                        help="the Python of the hub's environment (3.11 or "
                             "later, runnable by every account)")
    parser.add_argument("--accounts", default=",".join(ACCOUNTS),
                        help="the instructor first, then the students")
    parser.add_argument("--keep-venv", action="store_true",
                        help="clean: keep the environment for the next start")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        hub = Hub(state=args.state, prefix=args.prefix, venv=args.venv,
                  accounts=[a for a in args.accounts.split(",") if a],
                  ip=args.ip, port=args.port, python=args.python)
        if args.command == "status":
            return hub.status()
        if args.command in ("setup", "start"):
            hub.require_root()
        if args.command == "clean":
            hub.clean(keep_venv=args.keep_venv)
        else:
            getattr(hub, args.command)()
    except HubError as error:
        print(f"hub: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
