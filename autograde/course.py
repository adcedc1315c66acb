"""The nbgrader course on disk: submissions, reports, gradebook.

Layout (nbgrader's, plus two things of ours)::

    <course>/source/<assignment>/*.ipynb            instructor notebooks (tests)
    <course>/submitted/<student>/<assignment>/      what students handed in
    <course>/autograded/<student>/<assignment>/     written here, for formgrader
    <course>/reports/<assignment>/<student>.json    ours: every test's status
    <course>/reports/<assignment>/tests.csv         ours: one row per student x test
    <course>/gradebook.db                           nbgrader's gradebook
"""

import contextlib
import csv
import datetime
import difflib
import errno
import fcntl
import fnmatch
import hashlib
import html
import io
import json
import os
import shutil
import socket
import stat
import tempfile
import time
import textwrap
from pathlib import Path

import nbformat

from .notebook import SourceNotebook, nbgrader_meta, release_version, visible_part
from .results import NotebookReport, SubmissionResult, as_result


class CourseError(Exception):
    """The course folder is not usable for the request."""


def find_course(path=None):
    """The course root: ``path``, else the current folder when it holds
    ``nbgrader_config.py``, else ``exercises/`` below it."""
    if path is not None:
        root = Path(path)
        if not (root / "source").is_dir():
            raise CourseError(f"--course {str(path)!r} is not an nbgrader course "
                              f"folder: it has no source/ folder")
        return root.resolve()
    here = Path.cwd()
    if (here / "nbgrader_config.py").exists():
        if not (here / "source").is_dir():
            raise CourseError(f"{here} has an nbgrader_config.py but no source/ "
                              f"folder: run `nbgrader generate_assignment` from "
                              f"a course folder, or pass --course DIR")
        return here.resolve()
    if (here / "exercises" / "source").is_dir():
        return (here / "exercises").resolve()
    raise CourseError(f"{here} is not an nbgrader course folder (no "
                      f"nbgrader_config.py here); run autograde in the course "
                      f"folder, or pass --course DIR")


def assignments(root):
    """The names of the assignments under ``source/``."""
    folder = Path(root) / "source"
    try:
        return sorted(d.name for d in folder.iterdir()
                      if d.is_dir() and not d.name.startswith("."))
    except OSError:
        return []


def check_assignment(root, assignment):
    """Raise CourseError, listing the assignments there are, unless
    ``assignment`` has source notebooks."""
    folder = Path(root) / "source" / assignment
    if folder.is_dir() and any(folder.glob("*.ipynb")):
        return
    there = assignments(root)
    close = difflib.get_close_matches(assignment, there, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(there) if there else "none"
    what = "has no notebooks" if folder.is_dir() else "is not an assignment"
    raise CourseError(f"{assignment!r} {what} of the course in {root} "
                      f"(source/{assignment}/*.ipynb). The assignments are: "
                      f"{listed}.{hint}")


def load_sources(root, assignment):
    """``{notebook file name: SourceNotebook}`` of an assignment."""
    check_assignment(root, assignment)
    folder = Path(root) / "source" / assignment
    return {p.name: SourceNotebook.read(p) for p in sorted(folder.glob("*.ipynb"))}


# ---- one grader per course; temporary folders of killed runs --------------------
LOCK_NAME = ".autograde.lock"


def _holder(fd):
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return (f"pid {info['pid']} of user {info['user']} on "
                f"{info['host']}, started {info['started']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "its details are not written yet"


@contextlib.contextmanager
def grading_lock(root, wait=False, on_wait=None):
    """Hold the course's grading lock (``.autograde.lock``, an ``flock``
    the kernel drops when the holder ends, however it ends). Held by
    another grader: CourseError naming it, or with ``wait`` block until
    it is free (``on_wait(holder)`` is told first)."""
    path = Path(root) / LOCK_NAME
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o644)
        except PermissionError:     # another grader's file: flock needs no more
            fd = os.open(path, os.O_RDONLY | flags)
    except OSError as e:
        raise CourseError(f"cannot open the lock file {path}: {e.strerror}; "
                          f"the course folder {root} must be writable") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise CourseError(
                    f"another autograde grade is running on the course {root} "
                    f"({holder}); wait for it to end, or pass --wait") from None
            if on_wait is not None:
                on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            import pwd
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = str(os.geteuid())
        info = {"pid": os.getpid(), "user": user, "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%d %H:%M:%S UTC")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:
            pass                # the lock holds without its details
        yield
    finally:
        os.close(fd)


RUN_PREFIX = "autograde-run-"
_ALIVE = ".alive"


def clean_stale_runs(base=None):
    """Remove the temporary folders of grading runs that ended without
    cleaning up (killed): those of this user whose ``.alive`` lock no
    process holds. Returns how many were removed."""
    base = base or tempfile.gettempdir()
    removed = 0
    try:
        entries = list(os.scandir(base))
    except OSError:
        return 0
    for entry in entries:
        try:
            if not entry.name.startswith(RUN_PREFIX) or \
                    not entry.is_dir(follow_symlinks=False) or \
                    entry.stat(follow_symlinks=False).st_uid != os.geteuid():
                continue
            try:
                fd = os.open(os.path.join(entry.path, _ALIVE),
                             os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                # Being made right now, or broken long ago.
                if time.time() - entry.stat(follow_symlinks=False).st_mtime < 3600:
                    continue
                fd = None
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue        # its run is alive
                finally:
                    os.close(fd)
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def run_folder():
    """A temporary folder for this run's working folders (``tempfile``
    puts them there, in this process and the workers it forks), locked
    while the run lives, removed at its end; one left by a killed run is
    removed by the next (:func:`clean_stale_runs`).

    It is made and locked under another name, then renamed onto its
    name (reserved by an empty folder): so another grader's clean-up,
    which takes an unlocked ``.alive`` for a dead run, never sees it
    between the lock file's creation and its lock."""
    clean_stale_runs()
    path = tempfile.mkdtemp(prefix=RUN_PREFIX)
    made = tempfile.mkdtemp(prefix=".autograde-new-")
    os.chmod(made, 0o711)       # a sandbox uid reaches its own folder inside
    fd = os.open(os.path.join(made, _ALIVE),
                 os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(made, path)
    old = tempfile.tempdir
    tempfile.tempdir = path
    try:
        yield path
    finally:
        tempfile.tempdir = old
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def safe_name(name):
    """``name`` as printable text: bytes that are not UTF-8 (kept by
    Python as surrogates) are shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def find_submissions(root, assignment, student_glob="*"):
    """``[(student, folder)]`` under ``submitted/``, sorted by student.

    Nothing is followed: a student folder that is a link is skipped (it
    is not a submission of this course); an assignment folder that is a
    link is listed, and :func:`scan_submission` reports it.
    """
    base = Path(root) / "submitted"
    found = []
    if not base.is_dir():
        return found
    for d in sorted(os.scandir(base), key=lambda e: e.name):
        if not d.is_dir(follow_symlinks=False) or \
                not fnmatch.fnmatchcase(d.name, student_glob):
            continue
        folder = os.path.join(d.path, assignment)
        if os.path.lexists(folder):
            found.append((d.name, folder))
    return found


MAX_NOTEBOOK_MB = 32


def scan_submission(folder, limit_mb=64):
    """What a submission folder holds, read without following links.

    Returns ``(files, notes)``: ``files`` maps relative names to absolute
    paths of the plain files that may be copied into the sandbox (nothing
    hidden, at most ``limit_mb`` in all); ``notes`` says, in words, what
    was left out and why (links are tampering and named as such).
    """
    files, notes, total = {}, [], 0
    try:
        st = os.lstat(folder)
    except OSError as e:
        return {}, [f"the submission folder cannot be read ({e.strerror})"]
    if stat.S_ISLNK(st.st_mode):
        return {}, ["tampering: the submission folder is a link; nothing in "
                    "it was read"]
    if not stat.S_ISDIR(st.st_mode):
        return {}, ["the submission is not a folder"]
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        rel_dir = os.path.relpath(dirpath, folder)
        for name in list(dirnames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                notes.append(f"tampering: {safe_name(os.path.join(rel_dir, name))} "
                             f"is a link; it was not followed")
        dirnames[:] = [d for d in dirnames if not d.startswith(".")
                       and not os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            shown = safe_name(rel)
            if safe_name(name) != name:
                notes.append(f"{shown}: the file name is not UTF-8; the file "
                             f"was left out")
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                notes.append(f"tampering: {shown} is a link; it was not followed")
                continue
            if not stat.S_ISREG(st.st_mode):
                notes.append(f"{shown} is not a plain file; it was left out")
                continue
            if st.st_nlink > 1:
                notes.append(f"tampering: {shown} is a hard link to another "
                             f"file; it was not read")
                continue
            if name.startswith("."):
                continue
            total += st.st_size
            if total > limit_mb << 20:
                notes.append(f"{shown} and later files were left out: the "
                             f"submission is over {limit_mb} MB")
                return files, notes
            files[rel] = os.path.abspath(path)
    return files, notes


def read_submitted_notebook(folder, name, max_mb=MAX_NOTEBOOK_MB):
    """``(notebook, None)`` for the submitted notebook ``name``, or
    ``(None, why)`` when it is missing, a link, too large or not a
    readable version-4 notebook. The file is opened without following a
    link and read at most ``max_mb`` deep."""
    path = os.path.join(folder, name)
    try:
        if stat.S_ISLNK(os.lstat(folder).st_mode):
            return None, "tampering: the submission folder is a link"
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, f"{name} was not submitted"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None, f"tampering: {name} is a link; it was not followed"
        return None, f"{name} cannot be opened ({e.strerror})"
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None, f"{name} is not a plain file"
        if st.st_nlink > 1:
            return None, f"tampering: {name} is a hard link to another file"
        if st.st_size > max_mb << 20:
            return None, (f"{name} is {st.st_size / 2**20:.0f} MB, more than "
                          f"the {max_mb} MB a notebook may have")
        data = f.read((max_mb << 20) + 1)
    if not data.strip():
        return None, f"{name} is empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{name} is not UTF-8 text (a binary file?)"
    try:
        doc = json.loads(text)
    except ValueError as e:
        return None, f"{name} is not valid JSON (truncated?): {e}"[:300]
    if type(doc) is not dict or type(doc.get("cells")) is not list:
        return None, f"{name} is JSON but not a notebook (no list of cells)"
    if doc.get("nbformat") != 4:
        return None, (f"{name} has nbformat version {doc.get('nbformat')!r}; "
                      f"expected 4")
    try:
        nb = nbformat.from_dict(doc)
        for cell in nb.cells:
            if type(cell) is not nbformat.NotebookNode or \
                    cell.get("cell_type") not in ("code", "markdown", "raw"):
                raise ValueError("a cell without a known cell_type")
            if type(cell.get("source", "")) is list:
                cell.source = "".join(str(x) for x in cell.source)
            if type(cell.get("source", "")) is not str:
                raise ValueError("a cell whose source is not text")
            cell.setdefault("metadata", nbformat.NotebookNode())
            if type(cell.metadata) is not nbformat.NotebookNode:
                raise ValueError("a cell whose metadata is not a mapping")
    except (ValueError, TypeError, AttributeError) as e:
        return None, f"{name} is not a well-formed notebook: {e}"[:300]
    return nb, None


def fingerprint(folder, sources_dir):
    """A digest of everything a grade depends on: every file of the
    submission (names, kinds and contents, links not followed) and the
    assignment's source notebooks (the tests)."""
    h = hashlib.sha256()

    def add_tree(top):
        try:
            st = os.lstat(top)
        except OSError:
            h.update(b"missing")
            return
        if not stat.S_ISDIR(st.st_mode):
            h.update(f"not-a-folder {st.st_mode}".encode())
            return
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames) + [d for d in dirnames
                                              if os.path.islink(os.path.join(dirpath, d))]:
                path = os.path.join(dirpath, name)
                h.update(os.fsencode(os.path.relpath(path, top)) + b"\0")
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                h.update(f"{stat.S_IFMT(st.st_mode)} {st.st_nlink}\0".encode())
                if stat.S_ISLNK(st.st_mode):
                    h.update(os.fsencode(os.readlink(path)))
                elif stat.S_ISREG(st.st_mode):
                    try:
                        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                    except OSError:
                        continue
                    with os.fdopen(fd, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                h.update(b"\0")

    add_tree(str(folder))
    h.update(b"\0tests\0")
    add_tree(str(sources_dir))
    return h.hexdigest()


def atomic_write(path, data):
    """Write ``data`` (bytes or text) to ``path`` through a temporary file
    and a rename: a reader, or a grader killed halfway, sees the old file
    or the new one, never a part."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---- reports -------------------------------------------------------------------
CSV_FIELDS = ["student", "notebook", "grade_id", "title", "status", "score",
              "max_score", "message", "tampering"]


def report_path(root, assignment, student):
    """Where the JSON report of one student goes."""
    return Path(root) / "reports" / assignment / f"{student}.json"


def write_report(root, assignment, result):
    """Write one student's JSON report (a :class:`SubmissionResult`),
    atomically."""
    path = report_path(root, assignment, result.student)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(result.to_json(), indent=1, sort_keys=True))
    return path


def _load_report(path):
    """The :class:`SubmissionResult` recorded at ``path``, or None when it
    is missing or is not a report."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if type(data) is dict and "student" in data and "notebooks" in data:
            return SubmissionResult.from_json(data)
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return None


def read_report(root, assignment, student):
    """A student's recorded result, or None."""
    return _load_report(report_path(root, assignment, student))


def read_reports(root, assignment):
    """Every recorded result of an assignment (unreadable ones left out)."""
    found = map(_load_report,
                sorted((Path(root) / "reports" / assignment).glob("*.json")))
    return [res for res in found if res is not None]


def write_csv(root, assignment, results):
    """The per-test CSV of ``results`` (atomically); returns its path."""
    out = Path(root) / "reports" / assignment
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for res in sorted(results, key=lambda r: r.student):
        for nb in res.notebooks:
            writer.writerows({
                "student": res.student, "notebook": nb.notebook,
                "grade_id": t.grade_id, "title": t.title, "status": t.status,
                "score": t.score, "max_score": t.max_points,
                "message": t.message, "tampering": "; ".join(nb.tamper)}
                for t in nb.tests)
    path = out / "tests.csv"
    atomic_write(path, buf.getvalue())
    return path


def write_autograded(root, assignment, folder, sources, result):
    """The ``autograded/`` copy that formgrader and ``nbgrader
    generate_feedback`` read: the submission with each test cell put back
    as released (visible part only, never the hidden tests) and the test's
    outcome as its output.

    The folder is built beside its place and renamed into it, so that a
    grader killed halfway leaves the old copy or the new one. Nothing of
    the submission is read through a link."""
    parent = Path(root) / "autograded" / result.student
    parent.mkdir(parents=True, exist_ok=True)
    out = parent / assignment
    for left in parent.glob(f".{assignment}.*"):    # from a run killed halfway
        shutil.rmtree(left, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{assignment}."))
    try:
        _fill_autograded(tmp, folder, sources, result)
        os.chmod(tmp, 0o755)
        old = None
        if os.path.lexists(out):
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{assignment}.old."))
            os.replace(out, old / "x")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _fill_autograded(out, folder, sources, result):
    for extra in ("timestamp.txt", "submission_secret.txt"):
        data = read_plain(os.path.join(folder, extra), 1 << 16)
        if data is not None:
            (out / extra).write_bytes(data)
    by_name = {nb.notebook: nb for nb in result.notebooks}
    for name, src in sources.items():
        nb, _ = read_submitted_notebook(folder, name)
        if nb is None:
            nb = nbformat.v4.new_notebook()
        report = by_name.get(name) or NotebookReport(name)
        outcome = {t.grade_id: t for t in report.tests}
        cells, placed = [], set()
        for cell in nb.cells:
            gid = nbgrader_meta(cell).get("grade_id")
            if gid in src.test_ids:
                if gid in placed:
                    continue
                placed.add(gid)
                cells.append((src.order.get(gid), _test_cell(src.cells[gid],
                                                             outcome.get(gid))))
            elif gid in src.cells and gid not in placed:
                placed.add(gid)
                cell.metadata["nbgrader"] = dict(nbgrader_meta(src.cells[gid]))
                cells.append((src.order.get(gid), cell))
            elif not gid:
                cells.append((None, cell))
        cells = _restore(cells, src, placed, outcome)
        notes = [report.problem] if report.problem else []
        notes += report.tamper
        if notes:
            cells.insert(0, nbformat.v4.new_markdown_cell(
                "**autograde: this notebook needs a look** (the tests were run "
                "from the instructor's copy):\n\n" +
                "\n".join(f"- {html.escape(n)}" for n in notes)))
        nb.cells = cells
        with open(out / name, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
            f.flush()
            os.fsync(f.fileno())


def _restore(cells, src, placed, outcome):
    """Put graded cells the student deleted back where the source has
    them: right after the nearest kept cell that comes before them in the
    source, else at the top."""
    result = [c for _, c in cells]
    positions = [pos for pos, _ in cells]
    for gid, cell in src.cells.items():
        if gid in placed or not nbgrader_meta(cell).get("grade"):
            continue
        if gid in src.test_ids:
            new = _test_cell(cell, outcome.get(gid))
        else:
            new = nbformat.from_dict(cell)
            new.source = release_version(cell.source, cell.cell_type)
        mine = src.order.get(gid, 0)
        at = 0
        for i, pos in enumerate(positions):
            if pos is not None and pos < mine:
                at = i + 1
        result.insert(at, new)
        positions.insert(at, mine)
    return result


def read_plain(path, limit):
    """At most ``limit`` bytes of the plain file ``path`` (no link
    followed), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(limit)


def _test_cell(src_cell, outcome):
    cell = nbformat.v4.new_code_cell(visible_part(src_cell.source))
    cell.metadata["nbgrader"] = dict(nbgrader_meta(src_cell))
    if "id" in src_cell:
        cell["id"] = src_cell["id"]
    if outcome is not None and outcome.status != "passed":
        cell.outputs = [nbformat.v4.new_output(
            "error", ename=f"autograde: {outcome.status}",
            evalue=outcome.message, traceback=[wrap_message(
                f"autograde: {outcome.status}: {outcome.message}")])]
    return cell


def wrap_message(text, width=88):
    """``text`` broken into lines of at most ``width`` characters where it
    has spaces: formgrader shows an error output as preformatted text, so
    one long line would run off the page."""
    return "\n".join(
        textwrap.fill(line, width, break_long_words=False,
                      break_on_hyphens=False, subsequent_indent="  ") or line
        for line in text.splitlines())


# ---- gradebook --------------------------------------------------------------------
def check_gradebook(root, assignment):
    """Raise CourseError unless the gradebook knows ``assignment``."""
    if not (Path(root) / "gradebook.db").exists():
        raise CourseError(_not_in_gradebook(assignment))
    GradebookWriter(root, assignment, {}).close()


def _not_in_gradebook(assignment):
    return (f"the gradebook has no assignment {assignment!r}: run `nbgrader "
            f"generate_assignment {assignment}` in the course folder first "
            f"(it records the cells that hold points), or pass --no-gradebook")


class GradebookWriter:
    """The gradebook, open for one ``grade`` run: :meth:`write` stores one
    submission in one transaction, so a grader killed halfway keeps every
    submission it finished and none half-written.

    A test that timed out or crashed gets 0 points *and* is marked as
    needing a look by hand; a notebook with tampering, a timeout, a crash
    or one that could not be read is flagged.
    """

    def __init__(self, root, assignment, sources):
        import warnings
        from nbgrader.api import Gradebook
        self.assignment, self.sources = assignment, sources
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        # nbgrader's add_submission makes SQLAlchemy warn about autoflush.
        warnings.simplefilter("ignore")
        self.gb = Gradebook(f"sqlite:///{Path(root) / 'gradebook.db'}")
        if _find(self.gb.find_assignment, assignment) is None:
            self.close()
            raise CourseError(_not_in_gradebook(assignment))

    def write(self, res):
        """Store one submission's result (a :class:`SubmissionResult` or
        its JSON form), all or nothing."""
        res = as_result(res)
        db = self.gb.db
        try:
            # nbgrader's update_or_create_student and add_submission commit
            # on their own: made to flush instead, the new student and
            # submission rows belong to this transaction too.
            db.commit = db.flush
            try:
                self._write(res)
            finally:
                del db.commit
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def _write(self, res):
        gb, assignment, student = self.gb, self.assignment, res.student
        gb.update_or_create_student(student)
        sub = _find(gb.find_submission, assignment, student)
        if sub is None:
            sub = gb.add_submission(assignment, student)
        if res.timestamp:
            try:
                from nbgrader.utils import parse_utc
                sub.timestamp = parse_utc(res.timestamp)
            except Exception:
                pass
        graded = {nb.notebook for nb in res.notebooks}
        for name, src in self.sources.items():
            if name not in graded:      # the grader itself failed here
                self._mark_ungraded(student, name, src)
        # A link among the files is tampering with the whole submission.
        links = any(p.startswith("tampering") for p in res.problems)
        for report in res.notebooks:
            self._write_notebook(student, report, links)

    def _write_notebook(self, student, report, links):
        """One notebook's auto scores, review marks and flag."""
        nbsub = self._find(student, report.notebook)
        if nbsub is None:
            return
        bad = bool(report.problem)
        for t in report.tests:
            grade = self._find(student, report.notebook, t.grade_id)
            if grade is not None:
                grade.auto_score = float(t.score)
                grade.needs_manual_grade = t.troubled   # see runner._judge_fidelity
                bad = bad or t.troubled
        src = self.sources.get(report.notebook)
        for gid in (src.manual if src else {}):
            grade = self._find(student, report.notebook, gid)
            if grade is None or grade.manual_score is not None:
                continue
            if gid in report.unchanged_answers:
                grade.auto_score, grade.needs_manual_grade = 0.0, False
            else:
                grade.auto_score, grade.needs_manual_grade = None, True
        nbsub.flagged = bool(report.tamper) or bad or links \
            or bool(report.stopped_cells())

    def _mark_ungraded(self, student, name, src):
        """No score, *needs manual grade* and a flag: never a silent 0."""
        nbsub = self._find(student, name)
        if nbsub is None:
            return
        for t in src.tests:
            grade = self._find(student, name, t.grade_id)
            if grade is not None:
                grade.auto_score, grade.needs_manual_grade = None, True
        nbsub.flagged = True

    def _find(self, student, notebook, grade_id=None):
        """The gradebook's entry of ``student``'s ``notebook`` (a file
        name), or of its cell ``grade_id``; None when it has none."""
        stem = notebook.removesuffix(".ipynb")
        if grade_id is None:
            return _find(self.gb.find_submission_notebook, stem,
                         self.assignment, student)
        return _find(self.gb.find_grade, grade_id, stem, self.assignment, student)

    def close(self):
        """Close the database."""
        try:
            self.gb.close()
        finally:
            self._warnings.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def update_gradebook(root, assignment, results, sources):
    """Store auto scores through ``nbgrader.api`` so formgrader, manual
    grading, ``nbgrader export`` and ``generate_feedback`` see them (one
    transaction per submission; see :class:`GradebookWriter`)."""
    with GradebookWriter(root, assignment, sources) as writer:
        for res in results:
            writer.write(res)


def _find(lookup, *key):
    """``lookup(*key)``, one of nbgrader's ``find_*``, or None where the
    gradebook has no such entry."""
    from nbgrader.api import MissingEntry
    try:
        return lookup(*key)
    except MissingEntry:
        return None
