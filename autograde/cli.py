"""The ``autograde`` command (also ``python -m autograde``).

    autograde grade ASSIGNMENT [--workers N] [--student GLOB]
    autograde feedback ASSIGNMENT [--student GLOB]
    autograde check NOTEBOOK [--json]
    autograde selftest ASSIGNMENT

Run it in the course folder (the one with ``nbgrader_config.py``), or pass
``--course DIR``; from the repository root it finds ``exercises/``.
"""

import argparse
import collections
import dataclasses
import json
import os
import sys
from pathlib import Path

try:
    import nbformat
except ModuleNotFoundError as e:    # `pip install d2lblocks`, no extra
    raise SystemExit(f"autograde: the module {e.name!r} is missing; it "
                     f"comes with the course extra: pip install "
                     f"'d2lblocks[course]'") from None

from . import course as course_mod
from .results import STATUSES, SubmissionResult, as_result
from .runner import Settings


def _settings(args):
    from .sandbox import Limits
    limits = Limits(cpu_s=args.cpu_limit, memory_mb=args.memory_mb)
    for name in ("test_timeout", "cell_timeout", "budget", "after_timeout"):
        if getattr(args, name) <= 0:
            raise course_mod.CourseError(
                f"--{name.replace('_', '-')} must be a positive number of "
                f"seconds, got {getattr(args, name)}")
    return Settings(test_timeout=args.test_timeout, cell_timeout=args.cell_timeout,
                    submission_budget=args.budget, limits=limits,
                    after_timeout=args.after_timeout)


def _add_limits(p):
    d = Settings()      # the defaults live there and in sandbox.Limits
    p.add_argument("--test-timeout", type=float, default=d.test_timeout,
                   metavar="S", help="seconds per test cell (default %(default)s)")
    p.add_argument("--after-timeout", type=float, default=d.after_timeout,
                   metavar="S", help="seconds per test once a test of the same "
                   "notebook has timed out (default %(default)s)")
    p.add_argument("--cell-timeout", type=float, default=d.cell_timeout,
                   metavar="S", help="seconds per student code cell "
                   "(default %(default)s)")
    p.add_argument("--budget", type=float, default=d.submission_budget,
                   metavar="S", help="seconds per notebook in all "
                   "(default %(default)s)")
    p.add_argument("--memory-mb", type=int, default=d.limits.memory_mb,
                   metavar="MB", help="address-space limit of a student "
                   "process (default %(default)s)")
    p.add_argument("--cpu-limit", type=int, default=d.limits.cpu_s, metavar="S",
                   help="CPU seconds of a student process (default %(default)s)")


def build_parser():
    """The argument parser (also used by the documentation)."""
    parser = argparse.ArgumentParser(
        prog="autograde", description="Parallel, sandboxed grading of an "
        "nbgrader course: student code runs in a locked-down process, the "
        "hidden tests run in the grader.")
    parser.add_argument("--course", metavar="DIR", help="the nbgrader course "
                        "folder (default: here if it has nbgrader_config.py, "
                        "else exercises/)")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade every submission of an assignment")
    g.add_argument("assignment")
    g.add_argument("--workers", type=int, default=None,
                   help="parallel graders (default: one per core)")
    g.add_argument("--student", default="*", metavar="GLOB",
                   help="only students whose id matches (default: all)")
    g.add_argument("--no-gradebook", action="store_true",
                   help="write reports only, leave gradebook.db alone")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on the Dask cluster of this scheduler, e.g. "
                   "tcp://HOST:8786 (needs the 'cluster' extra)")
    g.add_argument("--dask-workers", type=int, metavar="N",
                   help="grade on a Dask LocalCluster of N processes here")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--force", action="store_true",
                   help="grade again submissions whose files and tests have "
                   "not changed since their recorded result")
    g.add_argument("--wait", action="store_true",
                   help="when another grader runs on the course, wait for it "
                   "to end (default: say who holds it and stop)")
    g.add_argument("--no-sandbox", action="store_true",
                   help="run student code without namespaces (only file "
                   "permissions fence the course); recorded in every report")
    _add_limits(g)

    f = sub.add_parser("feedback", help="write per-student feedback HTML "
                       "(after grade)")
    f.add_argument("assignment")
    f.add_argument("--student", default="*", metavar="GLOB")
    f.add_argument("--no-gradebook", action="store_true",
                   help="use the scores autograde recorded, not gradebook.db "
                   "(for a run graded with --no-gradebook)")

    c = sub.add_parser("check", help="run a notebook's visible tests before "
                       "submitting")
    c.add_argument("notebook")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_limits(c)

    s = sub.add_parser("selftest", help="the source solutions must get full "
                       "marks and the release none")
    s.add_argument("assignment")
    _add_limits(s)
    return parser


def main(argv=None):
    """Entry point of the ``autograde`` console script; returns the exit
    status (0 ok, 1 tests failed, 2 usage or grader error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"grade": cmd_grade, "feedback": cmd_feedback, "check": cmd_check,
                "selftest": cmd_selftest}[args.command](args)
    except course_mod.CourseError as e:
        print(f"autograde: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autograde: interrupted; every result already stored is kept "
              "(grade again to continue)", file=sys.stderr)
        return 130


# ---- grade ---------------------------------------------------------------------------
def outcome(res):
    """``(status, flags)`` of one student's result (a
    :class:`results.SubmissionResult` or its JSON form): see
    :meth:`results.SubmissionResult.outcome`."""
    return as_result(res).outcome()


def cmd_grade(args):
    """``autograde grade``: grade, write autograded notebooks, reports and
    the gradebook one submission at a time; print a summary."""
    _check_grade_options(args)
    root = course_mod.find_course(args.course)
    sources = course_mod.load_sources(root, args.assignment)
    subs = _select_submissions(root, args)
    settings = _grade_settings(args)
    if not args.no_gradebook:
        course_mod.check_gradebook(root, args.assignment)
    _note_unfaithful(sources)
    with _course_lock(root, args.wait), course_mod.run_folder():
        plan = _skip_unchanged(args, root, sources, subs, settings)
        stored, stop = _grade_and_record(args, root, sources, plan)
        csv_path = None
        if stop is None:
            csv_path, stop = _write_csv(root, args.assignment, plan.kept + stored)
        return _summary(args.assignment, plan, stored, csv_path, stop)


def _check_grade_options(args):
    if args.workers is not None and args.workers < 1:
        raise course_mod.CourseError(f"--workers must be at least 1, got {args.workers}")
    if args.dask_workers is not None and (args.dask_workers < 1 or args.scheduler):
        raise course_mod.CourseError(
            f"--dask-workers must be at least 1 and goes without --scheduler, "
            f"got {args.dask_workers} (--scheduler {args.scheduler})")


def _select_submissions(root, args):
    """``[(student, folder)]`` of the submissions ``--student`` selects."""
    subs = course_mod.find_submissions(root, args.assignment, args.student)
    if not subs:
        raise course_mod.CourseError(
            f"no submissions of {args.assignment!r} matching {args.student!r} "
            f"under {root / 'submitted'}")
    return subs


def _grade_settings(args):
    """The run's :class:`runner.Settings`; refuses when the sandbox
    cannot be built here and ``--no-sandbox`` was not given."""
    from .sandbox import namespace_problem
    settings = _settings(args)
    if args.no_sandbox:
        settings.sandbox = False
        return settings
    why = namespace_problem()
    if why is not None:
        raise course_mod.CourseError(
            f"student code will not run without a sandbox: {why}. To grade "
            f"anyway, with file permissions as the only fence, pass "
            f"--no-sandbox (every report then records it)")
    return settings


def _note_unfaithful(sources):
    """Say, before grading, which tests autograde cannot run as nbgrader
    would (they end waiting for a person; ``selftest`` fails on them)."""
    from .notebook import unfaithful_constructs
    for name, src in sources.items():
        for u in unfaithful_constructs(src):
            print(f"autograde: note: {name}: {u} (this test cannot be "
                  f"graded as nbgrader would; `autograde selftest` names "
                  f"every such test)", file=sys.stderr)


def _course_lock(root, wait):
    """The course's grading lock (see :func:`course.grading_lock`),
    saying so when ``--wait`` makes this run wait for another."""
    def waiting(holder):
        print(f"autograde: another grader holds the course ({holder}); "
              f"waiting for it to end (--wait)", file=sys.stderr, flush=True)
    return course_mod.grading_lock(root, wait=wait, on_wait=waiting)


@dataclasses.dataclass
class _Plan:
    """What a run does: ``tasks`` to grade (see ``executor``), ``direct``
    results made without grading (a folder name that is not UTF-8),
    ``kept`` the recorded results of submissions unchanged since;
    ``folders`` maps each student to the submission folder."""
    tasks: list
    direct: list
    kept: list
    folders: dict
    settings: dict


def _skip_unchanged(args, root, sources, subs, settings):
    """The :class:`_Plan` of a run: a submission whose fingerprint (its
    files and the tests) matches its recorded result is skipped unless
    ``--force``; one the grader failed on is graded again."""
    settings = settings.as_dict()
    plan = _Plan([], [], [], dict(subs), settings)
    sources_dir = root / "source" / args.assignment
    for student, folder in subs:
        fp = course_mod.fingerprint(folder, sources_dir)
        if course_mod.safe_name(student) != student:
            plan.direct.append(SubmissionResult.not_utf8(
                course_mod.safe_name(student), args.assignment, sources, fp))
            continue
        old = None if args.force else \
            course_mod.read_report(root, args.assignment, student)
        if old is not None and old.fingerprint == fp and not old.grader_error:
            plan.kept.append(old)
            continue
        plan.tasks.append({"course": str(root), "assignment": args.assignment,
                           "student": student, "folder": folder,
                           "fingerprint": fp, "settings": settings})
    return plan


class StoreFailed(Exception):
    """A result could not be stored: the run stops (see :func:`_record`)."""


def _grade_and_record(args, root, sources, plan):
    """Grade the plan's tasks, each result recorded as soon as it comes
    (the direct ones first); returns ``(results stored, why the run
    stopped or None)``."""
    from tqdm import tqdm
    stored = []
    writer = None if args.no_gradebook else \
        course_mod.GradebookWriter(root, args.assignment, sources)

    def record(res, folder):
        _record(root, args.assignment, writer, folder, sources, res)
        stored.append(res)

    try:
        for res in plan.direct:
            record(res, None)
        if plan.tasks:
            with _executor(args, len(plan.tasks)) as executor:
                _canary(executor, root, plan.settings)
                with tqdm(total=len(plan.tasks), unit="submission",
                          disable=args.quiet,
                          desc=f"grading {args.assignment}") as bar:
                    for res in map(as_result, executor.grade(plan.tasks)):
                        record(res, plan.folders[res.student])
                        bar.update()
    except StoreFailed as e:
        return stored, str(e)
    finally:
        if writer is not None:
            writer.close()
    return stored, None


def _executor(args, n_tasks):
    from .executor import DaskExecutor, LocalExecutor
    try:
        if args.scheduler or args.dask_workers:
            executor = DaskExecutor(args.scheduler, args.dask_workers)
            if executor.dashboard and not args.quiet:
                print(f"Dask dashboard: {executor.dashboard}")
            return executor
        return LocalExecutor(min(args.workers or os.cpu_count() or 1, n_tasks))
    except RuntimeError as e:
        raise course_mod.CourseError(str(e)) from None


def _canary(executor, root, settings):
    """Grade a known-good submission in the sandbox the run will use
    before grading anyone; refuse, with the cause, if it misbehaves."""
    from .sandbox import isolation_mode
    # Generous limits: a loaded machine must not fail the check.
    roomy = dict(settings, test_timeout=max(settings["test_timeout"], 60.0),
                 cell_timeout=max(settings["cell_timeout"], 60.0),
                 submission_budget=max(settings["submission_budget"], 180.0))
    why = executor.canary(str(root), roomy)
    if why is None:
        return
    mode = isolation_mode(settings["sandbox"])
    raise course_mod.CourseError(
        f"the sandbox check failed, so nobody was graded (isolation {mode}): "
        f"a known-good submission did not pass: {why}. Nothing was written. "
        f"AUTOGRADE_DEBUG=1 shows the sandbox's own errors")


def _record(root, assignment, writer, folder, sources, res):
    """Write one finished result before the next is taken: the autograded
    notebooks, the gradebook (one transaction), then the report, which
    marks the submission as done. A result the grader failed on
    (``grader_error``) gets its report only, never a score. A write that
    fails raises :class:`StoreFailed`, naming the folder: the run stops,
    since a full disk or a wrong permission fails every later write too."""
    steps = []
    if not res.grader_error:
        if folder is not None:
            steps.append((root / "autograded" / res.student / assignment,
                          lambda: course_mod.write_autograded(
                              root, assignment, folder, sources, res)))
        if writer is not None and not res.not_in_gradebook:
            steps.append((root / "gradebook.db", lambda: writer.write(res)))
    steps.append((root / "reports" / assignment,
                  lambda: course_mod.write_report(root, assignment, res)))
    for where, step in steps:
        try:
            step()
        except Exception as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else \
                f"{type(e).__name__}: {e}"
            raise StoreFailed(f"the results of {res.student} could not be "
                              f"written to {where} ({why[:500]})") from None


def _write_csv(root, assignment, results):
    """``(path, None)`` of the per-test CSV of every recorded student
    (not only this run's selection; ``results`` are the newest), or
    ``(None, why)`` when it could not be written."""
    recorded = {r.student: r for r in course_mod.read_reports(root, assignment)}
    recorded.update((r.student, r) for r in results)
    try:
        return course_mod.write_csv(root, assignment, recorded.values()), None
    except OSError as e:
        return None, (f"the per-test CSV could not be written to "
                      f"{root / 'reports' / assignment} ({e.strerror or e})")


def _summary(assignment, plan, stored, csv_path, stop):
    """Print what the run did and what to do next; the exit status."""
    errors = sum(bool(r.grader_error) for r in stored)
    left = len(plan.tasks) + len(plan.direct) - len(stored)
    _print_summary(assignment, plan.kept + stored, len(plan.kept),
                   len(stored) - errors, errors, left)
    if csv_path is not None:
        print(f"per-test results: {csv_path}")
    if stop is not None:
        print(f"autograde: STOPPED: {stop}. {len(stored)} result(s) of this run "
              f"were stored; {left} submission(s) were not graded or not "
              f"stored. Free the space (or fix the permissions) and run grade "
              f"again: what was stored is skipped", file=sys.stderr)
        return 2
    if errors:
        print(f"autograde: {errors} submission(s) were not graded because the "
              f"grader failed (GRADER ERROR above); nothing was written to "
              f"the gradebook for them; run grade again to grade them",
              file=sys.stderr)
        return 2
    return 0


def _print_summary(assignment, results, skipped, graded, errors=0, left=0):
    counts = collections.Counter(t.status for r in results for t in r.tests)
    outcomes = {r.student: r.outcome() for r in results}
    flagged = sum(status not in ("graded", "error")
                  for status, _ in outcomes.values())
    print(f"{assignment}: {len(results) + left} submission(s): {graded} graded, "
          f"{skipped} skipped (unchanged since their recorded result; "
          f"--force regrades), {flagged} flagged for a look" +
          (f", {errors} GRADER ERROR(S): not graded" if errors else "") +
          (f", {left} NOT STORED (the run stopped)" if left else ""))
    if counts:
        print("tests: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]))
    modes = collections.Counter(nb.isolation.get("mode", "?")
                                for r in results for nb in r.notebooks
                                if nb.isolation.get("mode") != "not run")
    if modes:
        print("isolation: " + ", ".join(f"{n} notebook(s) {m}" for m, n in
                                        sorted(modes.items())))
    for r in results:
        if r.grader_error:
            print(f"  {r.student}: GRADER ERROR (not graded)\n{r.grader_error}")
    if not outcomes:
        return
    width = max(len(s) for s in outcomes)
    print(f"{'student':{width}s}  {'score':>11s}  {'status':10s}  flags")
    for r in sorted(results, key=lambda r: r.student):
        status, flags = outcomes[r.student]
        score = "-" if r.grader_error else f"{r.score:g}/{r.max_score:g}"
        text = "; ".join(flags)
        if len(text) > 160:
            text = text[:157] + "..."
        print(f"{r.student:{width}s}  {score:>11s}  {status:10s}  {text}")


# ---- feedback ------------------------------------------------------------------------
def cmd_feedback(args):
    """``autograde feedback``: put autograde's explanations, with the
    gradebook's scores as they are now, into each student's feedback."""
    import fnmatch
    from .feedback import read_gradebook, write_feedback
    root = course_mod.find_course(args.course)
    course_mod.check_assignment(root, args.assignment)
    reports = course_mod.read_reports(root, args.assignment)
    if not reports:
        raise course_mod.CourseError(f"no reports for {args.assignment!r}: run "
                                     f"`autograde grade {args.assignment}` first")
    if not args.no_gradebook and not (root / "gradebook.db").is_file():
        raise course_mod.CourseError(
            f"no gradebook.db in {root}: feedback shows the gradebook's scores "
            f"as they are now, hand grades included, so it needs the one "
            f"`grade` wrote. Run this in the course folder that was graded, "
            f"or pass --no-gradebook to use the scores autograde recorded "
            f"(without hand grades). Nothing was changed")
    gradebook = {} if args.no_gradebook else read_gradebook(root, args.assignment)
    done, missing = [], []
    for res in reports:
        if not fnmatch.fnmatchcase(res.student, args.student):
            continue
        out = write_feedback(root, res, gradebook.get(res.student))
        done.append(out)
        missing += [f"{res.student}/{name}" for name in out["missing"]]
    if not done:
        print(f"no student matched {args.student!r}")
        return 0
    pages = sum(len(out["added"]) for out in done)
    print(f"autograde's section added to {pages} notebook feedback page(s) "
          f"of {len(done)} student(s) under {root / 'feedback'}; for you, "
          f"all notebooks of a student on one page: reports/"
          f"{args.assignment}/feedback/<student>.html (not released)")
    if missing:
        print(f"no nbgrader feedback page for {len(missing)} notebook(s), e.g. "
              f"{missing[0]}: run `nbgrader generate_feedback {args.assignment}"
              f" --force` first, then this command again", file=sys.stderr)
        return 1
    print(f"next: nbgrader release_feedback {args.assignment}")
    return 0


# ---- check and selftest: one notebook graded here -------------------------------------
def _grade_one(nb, path, settings, source_nb=None):
    """The :class:`results.NotebookReport` of ``nb`` graded against the
    tests of ``source_nb`` (default: its own), with the files of the
    notebook at ``path`` (None: none)."""
    from .notebook import SourceNotebook
    from .runner import NotebookGrader
    name = Path(path).name if path else "notebook.ipynb"
    src = SourceNotebook(source_nb or nb, name)
    files = {name: str(Path(path).resolve())} if path else {}
    return NotebookGrader(src, nb, files, settings).run()


def _read_notebook(path):
    """The notebook at ``path`` (a student's), or a CourseError saying
    why it cannot be checked."""
    if not os.path.lexists(path):
        raise course_mod.CourseError(
            f"no such file: {str(path)!r} (looked in {Path.cwd()})")
    if path.is_dir():
        raise course_mod.CourseError(
            f"expected a notebook file, got the folder {str(path)!r}")
    if not path.is_file():
        raise course_mod.CourseError(
            f"expected a notebook file, got {str(path)!r}, which is not a file")
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as e:
        raise course_mod.CourseError(f"{path} is not a readable notebook: {e}") from None


def cmd_check(args):
    """``autograde check``: run a notebook's own (visible) tests and list
    the written answers still empty."""
    from .feedback import empty_answers
    path = Path(args.notebook)
    nb = _read_notebook(path)
    settings = _settings(args)
    with course_mod.run_folder():
        report = _grade_one(nb, path, settings)
    empty = empty_answers(nb)
    ok = all(t.status == "passed" for t in report.tests)
    if args.json:
        data = report.to_json()
        del data["tamper"]      # the notebook is its own reference here
        data["empty_answers"] = [gid for gid, _ in empty]
        print(json.dumps(data, indent=1))
    else:
        _print_check(path.name, report, empty, args)
    return 0 if ok else 1


def _print_check(name, report, empty, args):
    """What ``check`` prints: the cells that did not run, each test
    cell's verdict, the empty answers, a count."""
    from .feedback import count, plain_counts, short_title
    problems = report.cell_problems
    if problems:
        print(f"{name}: {count(len(problems), 'code cell')} did not run "
              f"cleanly; fix {'it' if len(problems) == 1 else 'them'} first "
              f"(tests that use what they define fail because of it):")
        for p in problems:
            print(f"  cell {p['cell'] + 1}: {p['status']}: {p['message'][:300]}")
    print(f"{name}: the visible tests of each test cell (hidden tests in "
          f"the same cells run only when your work is graded)")
    timed_out = False
    for t in report.tests:
        mark = "PASS" if t.status == "passed" else t.status.upper()
        print(f"  {mark:8s} {short_title(t.title)}  [visible tests of a "
              f"{t.max_points:g}-point cell]")
        if t.message:
            print(f"           {plain_counts(t.message)[:500]}")
        if timed_out and t.status == "timeout":
            print(f"           (stopped after {args.after_timeout:g} s: once a "
                  f"test has timed out, the rest get --after-timeout)")
        timed_out = timed_out or t.status == "timeout"
    for gid, points in empty:
        print(f"  EMPTY    written answer {gid} ({points:g} points, graded by "
              f"hand): still as released, empty")
    n_ok = sum(t.status == "passed" for t in report.tests)
    ok = n_ok == len(report.tests)
    print(f"{n_ok} of {count(len(report.tests), 'test cell')} passed "
          f"their visible tests" +
          (f"; {count(len(empty), 'written answer')} still empty" if empty else "") +
          ("" if ok else "; hidden tests also run when your work is graded"))
    if timed_out:
        print(f"a test timed out after {args.test_timeout:g} s; the tests after "
              f"it get only {args.after_timeout:g} s each (--after-timeout), so "
              f"one endless loop does not cost a full timeout per test")


def cmd_selftest(args):
    """``autograde selftest``: every test can be run as nbgrader would run
    it, the solutions pass everything, the release nothing."""
    from .notebook import unfaithful_constructs
    root = course_mod.find_course(args.course)
    sources = course_mod.load_sources(root, args.assignment)
    settings = _settings(args)
    failures = []
    for name, src in sources.items():
        for u in unfaithful_constructs(src):
            print(f"cannot grade as nbgrader would: {name}: {u}")
            failures.append(f"{name}: test {u.cell} (line {u.line}) will wait "
                            f"for a person: {u.construct}")
    for name, src in sources.items():
        failures += _selftest_notebook(root / "source" / args.assignment / name,
                                       root / "release" / args.assignment / name,
                                       src, settings)
    for f in failures:
        print(f"FAIL {f}")
    print("selftest passed" if not failures else "selftest FAILED")
    return 0 if not failures else 1


def _selftest_notebook(source_path, release_path, src, settings):
    """Grade one source notebook's solution (it must get full marks) and
    its release (as released, else as stripped here: it must get none);
    returns the failures, in words."""
    failures, name = [], src.name
    full = _grade_one(src.nb, source_path, settings, source_nb=src.nb)
    bad = [f"{t.grade_id} ({t.status}: {t.message[:200]})"
           for t in full.tests if t.status != "passed"]
    print(f"{name}: solution {full.score:g}/{full.max_score:g}")
    if bad or full.score != full.max_score:
        failures.append(f"{name}: the solution does not pass: {'; '.join(bad)}")
    if release_path.exists():
        rel, where = nbformat.read(str(release_path), as_version=4), "release/"
    else:       # what generate_assignment would make of it
        rel, where = src.released(), "stripped source"
    released = _grade_one(rel, None, settings, source_nb=src.nb)
    print(f"{name}: release ({where}) {released.score:g}/{released.max_score:g}")
    if released.score != 0:
        passing = [t.grade_id for t in released.tests if t.score]
        failures.append(f"{name}: the release already earns points: {passing}")
    return failures
