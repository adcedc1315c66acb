"""Benchmark: ``autograde grade`` against ``nbgrader autograde``.

Generates N submissions of the course in ``exercises/`` (a mix of
correct, partly wrong and blank notebooks, built from the sample
submissions in ``tests/submissions/samples.py``), grades the same files
with both graders in this run, and prints both wall times and their
ratio. Then it grades one submission whose answer loops forever, to show
what an infinite loop costs each grader.

    python bench/grading.py [--submissions 100] [--workers N] [--no-loop]
                            [--as-user USER] [--executor dask]

``--as-user USER`` (run as root) also grades a third copy as the
unprivileged USER, whose sandbox is a user namespace: the durable,
sandboxed grader must stay fast in both modes. USER must be able to read
the interpreter and the checkout.

``--executor dask`` grades the same submissions with the local pool and
with a Dask ``LocalCluster`` of ``--workers`` worker processes instead
(nbgrader and the loop are left out), and prints both wall times, their
ratio and the cost of one submission in worker-seconds, the number to
size a cluster with (see autograde/README.md).

Both graders run as separate commands, so their start-up is included.
Nothing is written inside the repository (a temporary folder is used
unless ``--keep DIR`` is given).
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "layers_and_blocks"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_course(folder, n):
    """A released copy of the course with ``n`` submissions; returns
    ``(course, {student: kind})``."""
    demo = _load("bench_instructor_demo", ROOT / "exercises" / "instructor_demo.py")
    samples = demo.load_samples()
    course = demo.copy_course(Path(folder) / "course")
    demo.release(course)
    wrong = [k for k in samples.SAMPLES if k not in ("correct", "blank", "warns")]
    plan = {}
    for i in range(n):
        kind = ("correct", "wrong", "blank")[i % 3]
        sample = samples.SAMPLES[kind] if kind != "wrong" else \
            samples.SAMPLES[wrong[(i // 3) % len(wrong)]]
        plan[f"s{i:04d}"] = sample
    samples.write_all(course, samples=plan, assignment=ASSIGNMENT)
    kinds = {s: ("correct", "wrong", "blank")[i % 3] for i, s in enumerate(plan)}
    return course, kinds, demo, samples


def timed(cmd, cwd=None, user=None, home=None):
    """Run ``cmd`` (as ``user`` when given); returns (seconds, completed
    process)."""
    env = dict(os.environ, PATH=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if user is not None:
        cmd = ["runuser", "-u", user, "--", "env", "-i", f"PATH={env['PATH']}",
               f"HOME={home}", "LANG=C.UTF-8"] + cmd
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"{cmd[:4]} failed with exit code {proc.returncode}")
    return seconds, proc


def compare_scores(demo, a, b):
    """Number of (student, notebook) pairs whose autograded score differs."""
    sa, sb = demo.read_scores(a), demo.read_scores(b)
    return sum(sa[s][nb]["code"] != sb[s][nb]["code"] for s in sa for nb in sa[s])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-loop", action="store_true",
                        help="skip the infinite-loop comparison")
    parser.add_argument("--skip-nbgrader", action="store_true")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    parser.add_argument("--executor", choices=["local", "dask"], default="local",
                        help="dask: compare the local pool with a Dask "
                        "LocalCluster (needs the 'cluster' extra)")
    parser.add_argument("--as-user", metavar="USER",
                        help="also grade as this unprivileged user (run as root)")
    args = parser.parse_args(argv)
    if args.submissions < 1 or args.workers < 1:
        parser.error("--submissions and --workers must be positive")
    if args.as_user and os.geteuid() != 0:
        parser.error(f"--as-user needs root, got uid {os.geteuid()}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="grading-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    try:
        print(f"{args.submissions} submissions, {os.cpu_count()} cores, "
              f"autograde with {args.workers} worker(s)")
        course, kinds, demo, samples = make_course(work, args.submissions)
        if args.executor == "dask":
            dask_compare(work, course, args.submissions, args.workers)
            return 0
        ours = work / "ours"
        shutil.copytree(course, ours)
        t_ours, proc = timed([sys.executable, "-m", "autograde", "--course", str(ours),
                              "grade", ASSIGNMENT, "--quiet",
                              "--workers", str(args.workers)])
        print(f"autograde grade:    {t_ours:7.1f} s  "
              f"({t_ours / args.submissions:.2f} s per submission)")
        print("  " + proc.stdout.splitlines()[0])
        t_user = None
        if args.as_user:
            import pwd
            entry = pwd.getpwnam(args.as_user)
            theirs = work / "theirs"
            shutil.copytree(course, theirs)
            for path in [theirs, *theirs.rglob("*")]:
                os.lchown(path, entry.pw_uid, entry.pw_gid)
            t_user, proc = timed([sys.executable, "-m", "autograde", "--course",
                                  str(theirs), "grade", ASSIGNMENT, "--quiet",
                                  "--workers", str(args.workers)],
                                 cwd=work, user=args.as_user, home=work)
            print(f"autograde as {args.as_user}: {t_user:7.1f} s  "
                  f"({t_user / args.submissions:.2f} s per submission)")
            print("  " + [line for line in proc.stdout.splitlines()
                          if line.startswith("isolation")][0])
        if not args.skip_nbgrader:
            t_stock, _ = timed([sys.executable, "-m", "nbgrader", "autograde",
                                ASSIGNMENT], cwd=course)
            print(f"nbgrader autograde: {t_stock:7.1f} s  "
                  f"({t_stock / args.submissions:.2f} s per submission)")
            print(f"ratio nbgrader / autograde: {t_stock / t_ours:.1f}x")
            if t_user is not None:
                print(f"ratio nbgrader / autograde as {args.as_user}: "
                      f"{t_stock / t_user:.1f}x")
            diff = compare_scores(demo, course, ours)
            print(f"notebooks whose scores differ between the two: {diff}")
        if not args.no_loop:
            loop_course(work, demo, samples, skip_stock=args.skip_nbgrader)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def dask_compare(work, course, n, workers):
    """Grade the same submissions with the local pool and with a Dask
    LocalCluster of ``workers`` processes; print both times, the CPU time
    of each (every process of the run, so a busy machine does not count)
    and whether the outcomes agree."""
    _adopt_orphans()
    runs = {}
    for name, extra in (("local pool", ["--workers", str(workers)]),
                        ("Dask LocalCluster", ["--dask-workers", str(workers)])):
        copy = work / name.split()[0].lower()
        shutil.copytree(course, copy)
        before = _cpu_of_children()
        seconds, proc = timed([sys.executable, "-m", "autograde", "--course",
                               str(copy), "grade", ASSIGNMENT, "--quiet", *extra])
        cpu = _cpu_of_children() - before
        runs[name] = (seconds, copy)
        print(f"{name + ':':19s} {seconds:7.1f} s wall, {cpu:7.1f} s CPU  "
              f"({seconds / n:.3f} s per submission; {cpu / n:.2f} CPU-s "
              f"per submission)")
    (t_pool, pool), (t_dask, dask) = runs.values()
    print(f"ratio Dask / local pool: {t_dask / t_pool:.2f}x wall")
    differ = sum(_outcome(pool, s) != _outcome(dask, s) for s in _students(pool))
    print(f"submissions whose scores or statuses differ: {differ}")
    return t_pool, t_dask


def _adopt_orphans():
    """Become the parent of every process a run leaves behind (Linux),
    so that the CPU time of all of them is counted."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)     # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _cpu_of_children():
    """CPU seconds of every finished child process (orphans reaped first)."""
    import resource
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.5)         # some still ending
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _students(course):
    return sorted(p.stem for p in (course / "reports" / ASSIGNMENT).glob("*.json")
                  if p.stem != "tests")


def _outcome(course, student):
    import json
    res = json.loads((course / "reports" / ASSIGNMENT / f"{student}.json")
                     .read_text(encoding="utf-8"))
    return res["score"], [(t["grade_id"], t["status"]) for nb in res["notebooks"]
                          for t in nb["tests"]]


def loop_course(work, demo, samples, skip_stock=False):
    """Grade one submission whose forward() never returns."""
    course = demo.copy_course(work / "loop" / "course")
    demo.release(course)
    samples.write_all(course, assignment=ASSIGNMENT, samples={"loops": {
        "base": "correct",
        "cells": {"my_sequential": samples.LOOPING_SEQUENTIAL}}})
    ours = work / "loop" / "ours"
    shutil.copytree(course, ours)
    t_ours, _ = timed([sys.executable, "-m", "autograde", "--course", str(ours),
                       "grade", ASSIGNMENT, "--quiet", "--workers", "1"])
    print(f"one submission with an infinite loop (6 test cells hit it): "
          f"autograde {t_ours:.1f} s", end="")
    if not skip_stock:
        t_stock, _ = timed([sys.executable, "-m", "nbgrader", "autograde",
                            ASSIGNMENT], cwd=course)
        print(f", nbgrader {t_stock:.1f} s")
    else:
        print()


if __name__ == "__main__":
    sys.exit(main())
