"""The course end to end, on a temporary copy: instructor and students.

``python exercises/instructor_demo.py`` (``make demo``) copies
``exercises/`` (the nbgrader config and ``source/``) to a new folder and
plays the whole cycle there for every assignment of the course, in the
order of ``COURSE_ORDER`` in ``nbgrader_config.py``, saying what each
step does as it goes:

1. ``nbgrader generate_assignment``: the student version in ``release/``;
2. ``nbgrader release_assignment`` to an exchange folder inside the copy;
3. the sample students fetch each assignment, answer it (the samples of
   ``tests/submissions/``: correct, blank, typical bugs, and for
   ``layers_and_blocks`` a deleted test cell and a warning) and submit;
4. ``nbgrader collect``;
5. ``autograde grade``: student code in a sandbox, tests in the grader;
6. hand grading of the written answers, written into the gradebook the
   way formgrader does it;
7. ``nbgrader generate_feedback --force`` and ``autograde feedback``: each
   notebook's feedback page gets autograde's explanations;
8. ``nbgrader release_feedback``, and each student's ``fetch_feedback``;
9. a table of every student's scores, one per assignment;
10. the same submissions graded by stock ``nbgrader autograde`` on another
    copy, to check that every automatic score agrees (a minute or two per
    assignment; ``--no-compare`` skips it).

The copy is kept so you can open the feedback, or start formgrader in it.
``--dir PATH`` picks the folder (it must not exist yet); ``--assignment
NAME`` (repeatable) plays the cycle for those assignments only.

The functions below take an ``assignment`` (``layers_and_blocks`` by
default) so that other tools can run one step for one assignment.
"""

import argparse
import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ASSIGNMENT = "layers_and_blocks"
COURSE_ID = "d2lblocks"
SAMPLES_FILE = REPO / "tests" / "submissions" / "samples.py"
HAND_GRADES = {"correct": (2, "Right: the list is not registered, so the "
                           "network never sees those layers."),
               "warns": (2, "Right."),
               "no_batch_check": (1.5, "Say which methods miss the blocks.")}
DEFAULT_HAND_GRADE = (1, "Partly: name what the ordered dict gives you.")
# The hand grades of the other assignments' written answers.
OTHER_HAND_GRADES = {
    "parameter_management": {"correct": (2, "Right: one object, and the "
                                         "chain rule adds both uses.")},
}
OTHER_DEFAULT_HAND_GRADE = (1, "Partly: compare your answer with the "
                            "reasoning in the chapter.")


def course_order():
    """The assignments of the course in teaching order: ``COURSE_ORDER``
    of ``nbgrader_config.py`` (read without running the file), keeping
    those that have a folder in ``source/``, then any other folder there
    by name."""
    tree = ast.parse((HERE / "nbgrader_config.py").read_text(encoding="utf-8"))
    listed = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "COURSE_ORDER" for t in node.targets):
            listed = list(ast.literal_eval(node.value))
    found = {p.name for p in (HERE / "source").iterdir()
             if p.is_dir() and any(p.glob("*.ipynb"))}
    return [a for a in listed if a in found] + sorted(found - set(listed))


def load_samples():
    """The sample-submission module (``tests/submissions/samples.py``)."""
    spec = importlib.util.spec_from_file_location("layers_samples", SAMPLES_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_course(dest):
    """Copy the course (config and source notebooks) into the new folder
    ``dest``; returns its path."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; give a new folder")
    dest.mkdir(parents=True)
    shutil.copy2(HERE / "nbgrader_config.py", dest / "nbgrader_config.py")
    shutil.copytree(HERE / "source", dest / "source")
    return dest


def nbgrader(course, *args, check=True, tool="nbgrader", on_line=None):
    """Run ``nbgrader ARGS`` (or another ``tool`` module) in ``course`` with
    this Python; returns the completed process (output captured).

    ``on_line(text)``, when given, sees each line of output as it comes
    (to report progress). The interpreter's folder goes first on PATH:
    nbgrader starts the ``alembic`` tool and the notebook kernels by name,
    and they must come from this environment even when it is not
    activated.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    cmd = [sys.executable, "-m", tool, *args]
    if on_line is None:
        proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True,
                              text=True)
    else:
        lines = []
        with subprocess.Popen(cmd, cwd=course, env=env, text=True,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) as child:
            for line in child.stdout:
                lines.append(line)
                on_line(line.rstrip("\n"))
        proc = subprocess.CompletedProcess(cmd, child.returncode,
                                           "".join(lines), "")
    if check and proc.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(args)} failed with exit code "
                           f"{proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def release(course, assignment=ASSIGNMENT):
    """Generate the student version of ``assignment`` in ``release/``."""
    return nbgrader(course, "generate_assignment", assignment, "--force")


def submit_samples(course, assignment=ASSIGNMENT):
    """Write the sample submissions of ``assignment`` into ``submitted/``;
    returns the student ids."""
    return load_samples().write_all(course, assignment=assignment)


def stock_grade(course, assignment=ASSIGNMENT):
    """Grade every submission of ``assignment`` with stock ``nbgrader
    autograde``, write its feedback and ``grades.csv``.

    Returns ``{step: completed process}`` so callers can read the logs.
    """
    return {
        "autograde": nbgrader(course, "autograde", assignment),
        "generate_feedback": nbgrader(course, "generate_feedback", assignment),
        "export": nbgrader(course, "export"),
    }


def read_scores(course, assignment=ASSIGNMENT):
    """Scores of ``assignment`` from the gradebook.

    Returns ``{student: {notebook: {"code": float, "max_code": float,
    "written": float, "max_written": float, "manual_pending": bool,
    "cells": {grade_id: (score, max_score, needs_manual_grade)}}}}``;
    ``score`` is None for a cell that still waits for a person.
    """
    from nbgrader.api import Gradebook

    url = f"sqlite:///{Path(course).resolve() / 'gradebook.db'}"
    scores = {}
    with Gradebook(url) as gb:
        for student in gb.students:
            try:
                sub = gb.find_submission(assignment, student.id)
            except Exception:       # a student without this assignment
                continue
            per_nb = {}
            for nb in sub.notebooks:
                cells = {g.name: (g.score if not g.needs_manual_grade else None,
                                  g.max_score, g.needs_manual_grade)
                         for g in nb.grades}
                per_nb[nb.name] = {
                    "code": nb.code_score, "max_code": nb.max_code_score,
                    "written": nb.written_score,
                    "max_written": nb.max_written_score,
                    "manual_pending": nb.needs_manual_grade, "cells": cells}
            scores[student.id] = per_nb
    return scores


def _points(x):
    return f"{x:g}"


def format_table(scores, fetched=None):
    """A text table: one row per student, one column per exercise (test
    points, plus the written answer where there is one), and the total;
    with ``fetched`` (``{student: [files]}``), the number of feedback
    pages each student fetched."""
    notebooks = sorted({nb for per in scores.values() for nb in per})
    header = ["student"] + notebooks + ["total"] + \
        (["feedback fetched"] if fetched is not None else [])
    rows = []
    for student in sorted(scores):
        per = scores[student]
        row, got, top, pending = [student], 0.0, 0.0, False
        for name in notebooks:
            nb = per.get(name)
            if nb is None:
                row.append("-")
                continue
            cell = f"{_points(nb['code'])}/{_points(nb['max_code'])}"
            if nb["max_written"]:
                wait = nb["manual_pending"]
                cell += (" + ?/" if wait else
                         f" + {_points(nb['written'])}/") + _points(nb["max_written"])
                pending = pending or wait
            row.append(cell)
            got += nb["code"] + nb["written"]
            top += nb["max_code"] + nb["max_written"]
        row.append(f"{_points(got)}/{_points(top)}" + (" *" if pending else ""))
        if fetched is not None:
            row.append(f"{len(fetched.get(student, []))} pages")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(r, widths)).rstrip()
             for r in [header, ["-" * w for w in widths]] + rows]
    if any(r[len(notebooks) + 1].endswith("*") for r in rows):
        lines.append("* a written answer still needs grading in formgrader "
                     "(?: not graded yet)")
    return "\n".join(lines)


def format_outcomes(rows, before, after):
    """One line per student: autograde's total, whether every test cell
    agrees with nbgrader's score, the outcome counts, and any tampering
    seen. ``rows`` are autograde's per-test rows; ``before`` and
    ``after`` are :func:`read_scores` of the two gradebooks. Written
    answers are left out: one of them may have been graded by hand."""
    def auto_cells(scores, student, tests):
        return {(nb, gid): cell[0] for nb, per in scores[student].items()
                for gid, cell in per["cells"].items() if gid in tests}

    lines = []
    for student in sorted({r["student"] for r in rows}):
        mine = [r for r in rows if r["student"] == student]
        counts = {}
        for r in mine:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        tests = {r["grade_id"] for r in mine}
        same = auto_cells(before, student, tests) == \
            auto_cells(after, student, tests)
        total = (f"{_points(sum(float(r['score']) for r in mine))}/"
                 f"{_points(sum(float(r['max_score']) for r in mine))}")
        outcome = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        tamper = sorted({r["tampering"] for r in mine if r["tampering"]})
        lines.append(f"  {student:<18} {total:>5}  "
                     f"{'same as nbgrader' if same else 'DIFFERS from nbgrader':<21} "
                     f"{outcome}" + (f"  (tampering: {'; '.join(tamper)})" if tamper else ""))
    return "\n".join(lines)


def feedback_files(course, assignment=ASSIGNMENT):
    """The feedback HTML files of ``assignment``, sorted."""
    return sorted(Path(course).glob(f"feedback/*/{assignment}/*.html"))


def read_rows(course, assignment=ASSIGNMENT):
    """autograde's per-test rows (``reports/<assignment>/tests.csv``) as
    dicts."""
    import csv
    with open(Path(course) / "reports" / assignment / "tests.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---- the exchange: what students do in the Assignment List ----------------
def _student_config(exchange, home, student, assignment):
    """nbgrader settings of one student: their own folder and cache, the
    shared exchange folder."""
    from traitlets.config import Config
    c = Config()
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.assignment_id = assignment
    c.CourseDirectory.student_id = student
    c.CourseDirectory.root = str(home)
    c.Exchange.root = str(exchange)
    c.Exchange.cache = str(Path(home) / ".nbgrader-cache")
    c.Exchange.assignment_dir = str(home)
    return c


def _exchange(action, exchange, home, student, assignment):
    """Run one exchange action (``fetch_assignment``, ``submit`` or
    ``fetch_feedback``) as ``student`` in this process, as nbgrader's
    command of the same name does (without its start-up time)."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange import default
    cls = {"fetch_assignment": default.ExchangeFetchAssignment,
           "submit": default.ExchangeSubmit,
           "fetch_feedback": default.ExchangeFetchFeedback}[action]
    config = _student_config(exchange, home, student, assignment)
    coursedir = CourseDirectory(config=config)
    cls(coursedir=coursedir, authenticator=Authenticator(config=config),
        config=config).start()


def students_submit(exchange, homes, assignment=ASSIGNMENT):
    """Each sample student of ``assignment`` fetches the release, answers
    it as the sample says, and submits; ``homes`` is the folder of their
    home folders. Returns the student ids."""
    import nbformat
    samples = load_samples()
    found = samples.load(assignment)
    # A student writes prose, not the instructor's model answer and rubric.
    answers = samples.student_answers(HERE / "source" / assignment,
                                      found.WRITTEN)
    students = []
    for student, sample in found.SAMPLES.items():
        home = Path(homes) / student
        home.mkdir(parents=True, exist_ok=True)
        _exchange("fetch_assignment", exchange, home, student, assignment)
        for path in sorted((home / assignment).glob("*.ipynb")):
            nb = samples.make_notebook(nbformat.read(path, as_version=4),
                                       sample, answers)
            nbformat.write(nb, path)
        _exchange("submit", exchange, home, student, assignment)
        students.append(student)
    return students


def students_fetch_feedback(exchange, homes, students, assignment=ASSIGNMENT):
    """Each student fetches their feedback on ``assignment``; returns
    ``{student: [the fetched HTML files]}``."""
    fetched = {}
    for student in students:
        home = Path(homes) / student
        _exchange("fetch_feedback", exchange, home, student, assignment)
        fetched[student] = sorted(
            (home / assignment / "feedback").glob("*/*.html"))
    return fetched


# ---- what a person does in formgrader --------------------------------------
def hand_grade(course, grades=None, default=None, assignment=ASSIGNMENT):
    """Score the written answers of ``assignment`` that wait for a
    person, as formgrader does: a manual score and a comment in the
    gradebook. ``grades`` maps a student to ``(points, comment)``; others
    get ``default``. Returns ``{student: points}`` of the answers
    graded."""
    import warnings
    from nbgrader.api import Gradebook
    if grades is None:
        grades = HAND_GRADES if assignment == ASSIGNMENT else \
            OTHER_HAND_GRADES.get(assignment, {})
    if default is None:
        default = DEFAULT_HAND_GRADE if assignment == ASSIGNMENT else \
            OTHER_DEFAULT_HAND_GRADE
    done = {}
    url = f"sqlite:///{Path(course).resolve() / 'gradebook.db'}"
    with warnings.catch_warnings(), Gradebook(url) as gb:
        warnings.simplefilter("ignore")     # SQLAlchemy chatter
        for sub in gb.find_assignment(assignment).submissions:
            for nb in sub.notebooks:
                comments = {c.name: c for c in nb.comments}
                for grade in nb.grades:
                    if grade.cell_type != "markdown" or \
                            not grade.needs_manual_grade:
                        continue
                    points, text = grades.get(sub.student.id, default)
                    grade.manual_score = points
                    grade.needs_manual_grade = False
                    if grade.name in comments:
                        comments[grade.name].manual_comment = text
                    done[sub.student.id] = points
        gb.db.commit()
    return done


# ---- talking while it works ------------------------------------------------
class Narrator:
    """Numbered steps with their duration, printed as they happen."""

    def __init__(self, total):
        self.total, self.n, self.start = total, 0, None

    def step(self, text):
        """Start the next step: say what it does."""
        self.finish()
        self.n += 1
        self.start = time.monotonic()
        print(f"\n[{self.n}/{self.total}] {text}", flush=True)

    def say(self, text):
        """A line of detail under the current step."""
        print(f"      {text}", flush=True)

    def finish(self):
        """Close the current step with its duration."""
        if self.start is not None:
            self.say(f"({time.monotonic() - self.start:.1f} s)")
            self.start = None


def _autograde_progress(say):
    """An ``on_line`` for autograde: pass its lines on, indented, each
    state of its progress bar once."""
    seen = set()

    def on_line(line):
        text = line.strip()
        # tqdm redraws its bar with carriage returns and repeats the last
        # state at the end; one line per graded submission is enough.
        bar = re.match(r"(.*\|\s*\d+/\d+) \[", text)
        if bar and bar.group(1) in seen:
            return
        if bar:
            seen.add(bar.group(1))
        if text:
            say(text)
    return on_line


def _nbgrader_progress(say, total):
    """An ``on_line`` for ``nbgrader autograde``: one line per student."""
    seen = []
    pattern = re.compile(r"Autograding .*?(?:submitted|autograded)/([^/]+)/")

    def on_line(line):
        m = pattern.search(line)
        if m and m.group(1) not in seen:
            seen.append(m.group(1))
            say(f"nbgrader autograde: {m.group(1)} ({len(seen)}/{total})")
    return on_line


def lab_hint(course):
    """A command that opens JupyterLab with formgrader on ``course``, with
    or without the virtualenv active, as root or not."""
    bin_dir = Path(sys.executable).parent
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return (f'cd {course} && PATH="{bin_dir}:$PATH" jupyter lab'
            + (" --allow-root" if as_root else ""))


def _each(talk, assignments, what):
    """Yield each assignment, saying which one and how far along."""
    for i, assignment in enumerate(assignments, 1):
        if len(assignments) > 1:
            talk.say(f"{what} {assignment} ({i}/{len(assignments)})")
        yield assignment


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="a new folder for the copy (default: "
                        "a fresh temporary folder)")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip the check against stock nbgrader autograde")
    parser.add_argument("--assignment", action="append", metavar="NAME",
                        help="play the cycle for this assignment only "
                        "(repeatable; default: every assignment, in course "
                        "order)")
    args = parser.parse_args(argv)
    known = course_order()
    chosen = args.assignment or known
    unknown = [a for a in chosen if a not in known]
    if unknown:
        parser.error(f"no assignment {', '.join(unknown)} in source/ "
                     f"(the course has: {', '.join(known)})")
    base = Path(args.dir) if args.dir else \
        Path(tempfile.mkdtemp(prefix="d2lblocks-course-"))
    course = copy_course(base / "course")
    exchange, homes = base / "exchange", base / "students"
    exchange.mkdir()
    where = f"--Exchange.root={exchange}"
    names = " ".join(chosen) if len(chosen) == 1 else "NAME"
    print(f"course copy: {course}\nexchange:    {exchange}\n"
          f"students:    {homes}/<student>\n"
          f"assignments: {', '.join(chosen)}", flush=True)
    talk = Narrator(9 if args.no_compare else 10)

    talk.step(f"generate: nbgrader generate_assignment {names} (the "
              f"student version, without solutions or hidden tests)")
    for assignment in _each(talk, chosen, "generating"):
        release(course, assignment)
    talk.step(f"release: nbgrader release_assignment {names} (copies "
              f"it into the exchange)")
    for assignment in _each(talk, chosen, "releasing"):
        nbgrader(course, "release_assignment", assignment, where)
    talk.step("students: each fetches the assignment, answers it and "
              "submits (Assignment List > Fetch, then Submit)")
    students = {}
    for assignment in chosen:
        students[assignment] = students_submit(exchange, homes, assignment)
        talk.say(f"{assignment}: {len(students[assignment])} students "
                 f"submitted: {', '.join(students[assignment])}")
    talk.step(f"collect: nbgrader collect {names} (into submitted/)")
    for assignment in _each(talk, chosen, "collecting"):
        nbgrader(course, "collect", assignment, where)
    stock = base / "course-nbgrader"
    if not args.no_compare:       # an ungraded copy for stock nbgrader
        shutil.copytree(course, stock)
    talk.step(f"grade: autograde grade {names} (student code in a "
              f"sandbox, tests in the grader, scores into gradebook.db)")
    for assignment in _each(talk, chosen, "grading"):
        nbgrader(course, "grade", assignment, tool="autograde",
                 on_line=_autograde_progress(talk.say))
    talk.step("hand grading: a person scores the written answers "
              "(formgrader: Manage Submissions; here through nbgrader's "
              "Gradebook API)")
    for assignment in chosen:
        graded = hand_grade(course, assignment=assignment)
        if graded:
            talk.say(f"{assignment}: {len(graded)} written answers graded; "
                     f"a blank one was scored 0 automatically")
    talk.step(f"feedback: nbgrader generate_feedback {names} --force "
              f"(--force replaces feedback written before the hand "
              f"grading), then autograde feedback {names} (adds why "
              f"each test failed to every notebook's page)")
    for assignment in _each(talk, chosen, "feedback for"):
        nbgrader(course, "generate_feedback", assignment, "--force")
        nbgrader(course, "feedback", assignment, tool="autograde",
                 on_line=talk.say)
    talk.step(f"release feedback: nbgrader release_feedback {names}; "
              f"then each student fetches it (Assignment List > Fetch "
              f"Feedback)")
    fetched = {}
    for assignment in chosen:
        nbgrader(course, "release_feedback", assignment, where)
        fetched[assignment] = students_fetch_feedback(
            exchange, homes, students[assignment], assignment)
        pages = fetched[assignment]
        example = next((v[-1] for v in pages.values() if v), "(none)")
        talk.say(f"{assignment}: {sum(map(len, pages.values()))} feedback "
                 f"pages fetched, e.g. {example}")
    talk.step("scores now: tests by autograde, written answers by hand")
    scores = {}
    for assignment in chosen:
        scores[assignment] = read_scores(course, assignment)
        if len(chosen) > 1:
            print(f"\n{assignment}", flush=True)
        print(format_table(scores[assignment], fetched[assignment]), flush=True)
    if not args.no_compare:
        talk.step("check: stock nbgrader autograde grades the same "
                  "submissions on a copy (a minute or two per assignment); "
                  "its automatic scores must agree with autograde's")
        for assignment in _each(talk, chosen, "stock nbgrader on"):
            nbgrader(stock, "autograde", assignment,
                     on_line=_nbgrader_progress(talk.say,
                                                len(students[assignment])))
            print(format_outcomes(read_rows(course, assignment),
                                  read_scores(stock, assignment),
                                  scores[assignment]), flush=True)
    talk.finish()
    print(f"\nper-test results: {course / 'reports'}/<assignment>/tests.csv")
    print(f"to look around in formgrader: {lab_hint(course)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
