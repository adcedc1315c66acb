"""What a test sees of the student's kernel, kept live.

A test cell runs in the grader, yet nbgrader runs it in the student's
namespace and working folder. Two views give it the same meaning:

- :class:`LiveNamespace` is the test's globals. A name the test binds
  stays here (the test's own object) and, where student code may read it,
  is given to the student's namespace too; a name it reads that the
  grader does not hold is looked up in the student's namespace at that
  moment; ``del name`` deletes it there. The student process reports the
  names it rebinds, so a value cached here is never stale.
- :class:`FolderView` is the test's working folder: a private copy of the
  student's working folder, brought up to date after every request that
  changed it (each reply lists the folder), whose changes (files the test
  wrote or removed) go back with the next request. Only plain files cross, as bytes read by the
  student process itself, so a link in the student's folder can show the
  grader nothing the student could not read already.
"""

import builtins
import os
import shutil
import stat
import types

_BUILTIN_NAMES = frozenset(dir(builtins))
MAX_VIEW_BYTES = 256 << 20       # the most the folder view holds in all
PULL_TIMEOUT = 10.0              # seconds for the student to send its files


class LiveNamespace(dict):
    """The globals of test cells (a dict, so ``exec`` accepts it; reads,
    writes and deletions go through the methods below).

    Arguments:
        proc: the :class:`remote.StudentProcess`.
        student_names: names the student's code binds or reads: a value
            the test binds under one of them is given to student code.
        solution_names: names the solution cells define; these are always
            the student's (a set-up cell of the grader never shadows them).
    """

    def __init__(self, proc, student_names, solution_names):
        super().__init__(__builtins__=builtins, __name__="__main__")
        self._proc = proc
        self._student_names = set(student_names)
        self._solution_names = set(solution_names)
        self._cache = {}        # name -> value read from the student
        self._given = set()     # names whose value here was given to student code
        self._proc_gen = None
        self.setup_names = set()    # bound by the grader's set-up cells

    # ---- bookkeeping ----------------------------------------------------------
    def _fresh(self):
        """Forget what the student held if its process was restarted."""
        gen = self._proc.generation
        if gen != self._proc_gen:
            self._proc_gen = gen
            self._cache.clear()
            self._given.clear()

    def student_changed(self, names):
        """Student code rebound or deleted ``names``: the student's value
        wins from now on."""
        for name in names:
            self._cache.pop(name, None)
            if name in self._given and name not in self.setup_names:
                self._given.discard(name)
                dict.pop(self, name, None)

    def _from_student(self, name):
        if not self._proc.alive:
            raise KeyError(name)
        self._fresh()
        if name in self._cache:
            return self._cache[name]
        got = self._proc.globals([name], None)
        if name not in got:
            raise KeyError(name)
        self._cache[name] = got[name]
        self._student_names.add(name)
        return got[name]

    # ---- the mapping ------------------------------------------------------------
    def __getitem__(self, name):
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        if name in _BUILTIN_NAMES or name.startswith("__"):
            raise KeyError(name)
        return self._from_student(name)

    def __setitem__(self, name, value):
        dict.__setitem__(self, name, value)
        self._cache.pop(name, None)
        if name in self._student_names and not isinstance(value, types.ModuleType) \
                and self._proc.alive and name not in self.setup_names:
            self._fresh()
            try:
                self._proc.set_name(name, value)
                self._given.add(name)
            except Exception:       # a value that cannot cross stays here
                self._given.discard(name)
                from .remote import doubt
                doubt(self._proc, f"the test bound {name}, which student code "
                      f"reads, to a {type(value).__name__} it cannot be given",
                      "data, a function or an object the test defines")

    def __delitem__(self, name):
        here = dict.__contains__(self, name)
        if here:
            dict.__delitem__(self, name)
        there = False
        if (not here or name in self._given or name in self._student_names) \
                and self._proc.alive:
            self._fresh()
            there = self._proc.del_name(name)
        self._cache.pop(name, None)
        self._given.discard(name)
        if not (here or there):
            raise KeyError(name)

    def __contains__(self, name):
        try:
            self[name]
        except KeyError:
            return False
        return True

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def pop(self, name, *default):
        try:
            value = self[name]
        except KeyError:
            if default:
                return default[0]
            raise
        del self[name]
        return value

    def roots(self):
        """Every value the tests hold (for the shared-object collector)."""
        return list(dict.values(self)) + list(self._cache.values())

    def local(self, name, value):
        """Bind ``name`` here only (the grader's set-up cells); a name the
        solution cells define stays the student's."""
        if name in self._solution_names:
            return
        dict.__setitem__(self, name, value)
        self.setup_names.add(name)

    def forget_student(self, names):
        """Let ``names`` be looked up in the student's namespace again
        (a set-up name that stands for student state, such as pyplot)."""
        for name in names:
            dict.pop(self, name, None)
            self.setup_names.discard(name)


class FolderView:
    """The test's copy of the student's working folder.

    Arguments:
        proc: the :class:`remote.StudentProcess`.
        path: an empty private folder of the grader to hold the copy.
    """

    def __init__(self, proc, path):
        self.proc, self.path = proc, path
        self.student = {}       # rel -> [size, mtime_ns] in the student's folder
        self.mine = {}          # rel -> (size, mtime_ns) of the copy written here
        self.busy = False
        self.skipped = set()    # files too large to copy

    def pull(self, listing):
        """After a call: fetch what the student's listing says changed."""
        if not _valid_listing(listing):
            return
        if {k: v[:2] for k, v in listing.items()} == self.student:
            return
        self.busy = True
        try:
            got = self.proc.request({"op": "files", "known": self.student},
                                    PULL_TIMEOUT)
        finally:
            self.busy = False
        if type(got) is dict:
            self._apply(got)

    def _apply(self, got):
        if not _valid_listing(got):
            return
        total = 0
        for rel, info in got.items():
            target = self._target(rel)
            if target is None:
                continue
            if len(info) == 3:
                data = info[2]
                if type(data) is not bytes or total + len(data) > MAX_VIEW_BYTES:
                    self.skipped.add(rel)
                    self._remove(rel)
                    continue
                total += len(data)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.isdir(target) and not os.path.islink(target):
                    self._remove(rel)
                # In place: a file the test holds open stays the same file.
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                             | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                st = os.stat(target)
                self.mine[rel] = (st.st_size, st.st_mtime_ns)
            self.student[rel] = list(info[:2])
        for rel in [r for r in self.student if r not in got]:
            self.student.pop(rel)
            self._remove(rel)
            self.mine.pop(rel, None)

    def _target(self, rel):
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) \
                or "\x00" in rel:
            return None
        return os.path.join(self.path, *parts)

    def _remove(self, rel):
        target = self._target(rel)
        if target is not None and os.path.lexists(target):
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target, ignore_errors=True)
            else:
                os.unlink(target)

    def changes(self):
        """``{rel: bytes or None}``: files the test wrote, changed or
        removed in its copy since the last sync."""
        now = {}
        for folder, dirs, files in os.walk(self.path):
            for name in files:
                full = os.path.join(folder, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    rel = os.path.relpath(full, self.path).replace(os.sep, "/")
                    now[rel] = (st.st_size, st.st_mtime_ns)
        put = {}
        for rel, info in now.items():
            if self.mine.get(rel) != info and info[0] <= MAX_VIEW_BYTES:
                with open(os.path.join(self.path, rel), "rb") as f:
                    put[rel] = f.read()
                self.mine[rel] = info
        for rel in [r for r in self.mine if r not in now]:
            if rel not in self.skipped:
                put[rel] = None
            self.mine.pop(rel)
        return put

    def unsend(self, put):
        """The changes ``put`` did not reach the student: offer them again."""
        for rel in put:
            self.mine.pop(rel, None)


def _valid_listing(listing):
    return type(listing) is dict and all(
        type(k) is str and type(v) is list and len(v) in (2, 3)
        and type(v[0]) is int and type(v[1]) is int for k, v in listing.items())
