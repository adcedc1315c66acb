"""The course's notebooks: find them, keep them clean, check their claims.

The committed notebooks are the source: ``chapters/NN-*.ipynb`` and
``exercises/source/<assignment>/*.ipynb``, edited in JupyterLab (the
exercises with nbgrader's Create Assignment toolbar). They are committed
without outputs. After editing, strip them with

    python tests/notebook_tools.py            # clean every notebook in place
    python tests/notebook_tools.py --check    # only report (exit 1 if dirty)
    python tests/notebook_tools.py PATH ...   # just these files

Claims (chapters). A code cell may list claims under
``metadata["expect"]``; JupyterLab edits it in the property inspector.

* A string must appear in the markdown cell right above the code cell and
  in the code cell's output.
* A range ``{"printed": "test accuracy {}", "between": [0.7, 0.9],
  "stated": "between 0.7 and 0.9"}``: ``stated`` must appear in the
  markdown above and name every bound (``null`` leaves a side open); the
  number printed where ``{}`` stands must lie within the bounds.
* Every shape written in backticks in a markdown cell (`(2, 10)`, `()`,
  `(256, None)`, `(256, ?)`) must be a string claim of the code cell right
  below it. When that output writes the same shape in another spelling
  (``None`` for an unknown size in one place, ``?`` in another), the prose
  must name that spelling too.
* Measured times depend on the machine, so prose never states one: a code
  cell that prints a time (``14.2us``) is tagged ``timing``, and the
  markdown right above a timing cell names no amount of time
  ("several microseconds", "20 ms"). Tests never compare timings.
"""

import json
import pathlib
import re
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
EXERCISE_SOURCE = ROOT / "exercises" / "source"
CELL_TIMEOUT_S = 180        # generous: a busy 2-core machine

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python",
              "name": "python3"}
LANGUAGE_INFO = {"name": "python"}
ALLOWED_NOTEBOOK_METADATA = {"kernelspec", "language_info"}
# Claims (chapters), nbgrader's marks (exercises), and Jupyter's own tags.
ALLOWED_CELL_METADATA = {"expect", "nbgrader", "tags"}
TIMING_TAG = "timing"

_SIZE = r"(?:\d+|None|\?)"
# A backticked tuple of sizes: `(2, 10)`, `(256,)`, `(256, None)`, `()`.
_SHAPE = re.compile(rf"`(\((?:{_SIZE}(?:, {_SIZE})*,?)?\))`")
# The same, unquoted, as an output prints it.
_PRINTED_SHAPE = re.compile(rf"\((?:{_SIZE}(?:, {_SIZE})*,?)?\)")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TIME_UNIT = (r"(?:ns|us|µs|ms|s|sec|nanoseconds?|microseconds?|"
              r"milliseconds?|seconds?)")
# A time as a program prints it: 14.2us, 3 ms, 0.5 s.
_PRINTED_TIME = re.compile(rf"\d+(?:\.\d+)?\s?{_TIME_UNIT}\b")
# An amount of time in prose: 20 ms, several microseconds, a fraction of
# a second, tens of microseconds.
_PROSE_TIME = re.compile(
    rf"(?:{_NUMBER}\s*|\b(?:few|several|many|some|tens of|dozens of|"
    rf"hundreds of|thousands of|fraction of an?)\s+){_TIME_UNIT}\b",
    re.IGNORECASE)
_NBGRADER_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION",
                     "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


# ---- finding and reading ----------------------------------------------------
def chapter_notebooks():
    """The chapter notebooks in reading order (their names sort that way)."""
    return sorted(CHAPTERS.glob("[0-9][0-9]-*.ipynb"))


def exercise_notebooks():
    """The source notebooks of every assignment, by assignment name."""
    return {folder.name: sorted(folder.glob("*.ipynb"))
            for folder in sorted(EXERCISE_SOURCE.iterdir()) if folder.is_dir()}


def all_notebooks():
    """Every committed notebook: the chapters, then the exercise sources."""
    found = list(chapter_notebooks())
    for paths in exercise_notebooks().values():
        found.extend(paths)
    return found


def read(path):
    """Read a notebook file as nbformat version 4."""
    return nbformat.read(str(path), as_version=4)


def render(nb):
    """The exact text Jupyter writes for ``nb`` (one space of indent, a
    final newline), so that saving from JupyterLab leaves no diff."""
    return nbformat.writes(nb) + "\n"


# ---- clean to commit --------------------------------------------------------
def cleanliness_problems(nb):
    """What keeps ``nb`` from being committed: outputs, execution counts,
    metadata beyond the kernelspec, the language name and the allowed cell
    keys, a kernelspec other than python3, missing or repeated cell ids."""
    problems = []
    extra = set(nb.metadata) - ALLOWED_NOTEBOOK_METADATA
    if extra:
        problems.append(f"notebook metadata has extra keys {sorted(extra)}")
    if nb.metadata.get("kernelspec") != KERNELSPEC:
        problems.append(f"kernelspec should be {KERNELSPEC}, "
                        f"got {nb.metadata.get('kernelspec')!r}")
    if nb.metadata.get("language_info") != LANGUAGE_INFO:
        problems.append(f"language_info should be exactly {LANGUAGE_INFO}, "
                        f"got {nb.metadata.get('language_info')!r}")
    seen = set()
    for i, cell in enumerate(nb.cells):
        cell_id = cell.get("id")
        if not cell_id:
            problems.append(f"cell {i} has no id")
        elif cell_id in seen:
            problems.append(f"cell {i} repeats the id {cell_id!r}")
        seen.add(cell_id)
        extra = set(cell.metadata) - ALLOWED_CELL_METADATA
        if extra:
            problems.append(f"cell {i} metadata has extra keys {sorted(extra)}")
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            problems.append(f"cell {i} has an empty tag list")
        if cell.cell_type == "code":
            if cell.outputs:
                problems.append(f"cell {i} has outputs")
            if cell.execution_count is not None:
                problems.append(f"cell {i} has execution count "
                                f"{cell.execution_count}")
        elif cell.get("attachments"):
            problems.append(f"cell {i} has attachments (commit images as "
                            f"files)")
    return problems


def file_problems(path):
    """Everything wrong with the committed file at ``path``: invalid
    nbformat, :func:`cleanliness_problems`, or text other than Jupyter's
    own formatting."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("nbformat") != 4:
            raise nbformat.ValidationError("expected nbformat version 4")
        nbformat.validate(data)
    except (nbformat.ValidationError, json.JSONDecodeError) as err:
        return [f"not a valid notebook: {str(err).splitlines()[0]}"]
    nb = nbformat.from_dict(data)
    if (nb.nbformat, nb.nbformat_minor) < (4, 5):
        return [f"nbformat {nb.nbformat}.{nb.nbformat_minor} has no cell ids; "
                f"save it with Jupyter 4.5 or newer"]
    problems = cleanliness_problems(nb)
    if not problems and text != render(nb):
        problems.append("not in Jupyter's formatting")
    return problems


def clean(nb):
    """Strip ``nb`` in place to what is committed: no outputs, no execution
    counts, the python3 kernelspec, only the allowed metadata. Cell ids,
    sources, claims, tags and nbgrader's marks are kept. Returns ``nb``."""
    for key in set(nb.metadata) - ALLOWED_NOTEBOOK_METADATA:
        del nb.metadata[key]
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    for cell in nb.cells:
        for key in set(cell.metadata) - ALLOWED_CELL_METADATA:
            del cell.metadata[key]
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            del cell.metadata["tags"]
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def main(argv):
    """Clean the notebooks named in ``argv`` (default: all of them); with
    ``--check``, only list the ones that need it. Returns the exit code."""
    check = "--check" in argv
    paths = [pathlib.Path(a) for a in argv if a != "--check"] or all_notebooks()
    dirty = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        cleaned = render(clean(nbformat.reads(text, as_version=4)))
        if cleaned == text:
            continue
        dirty += 1
        if check:
            print(f"{path}: needs cleaning")
        else:
            path.write_text(cleaned, encoding="utf-8")
            print(f"{path}: cleaned")
    if check and dirty:
        print("run: python tests/notebook_tools.py")
        return 1
    return 0


# ---- nbgrader's marks -------------------------------------------------------
def nbgrader_problems(notebooks):
    """Where the nbgrader marks of one assignment disagree with each other.

    ``notebooks`` maps a file name to its notebook. Checks nbgrader's own
    schema validation, then: every grade_id is unique in the assignment;
    graded cells have positive points and only they have points; test
    cells are read-only and solution cells are not; solution and hidden
    test markers come in pairs and only in cells where nbgrader looks for
    them (elsewhere they would reach the students)."""
    from nbgrader.nbgraderformat import (MetadataValidator, SchemaTooNewError,
                                         SchemaTooOldError, ValidationError)
    refused = (ValidationError, SchemaTooOldError, SchemaTooNewError,
               KeyError, TypeError)

    problems, owner = [], {}
    for name, nb in notebooks.items():
        try:
            MetadataValidator().validate_nb(nb)
        except refused as err:
            problems.append(f"{name}: nbgrader refuses it: {err!r}")
        for i, cell in enumerate(nb.cells):
            where = f"{name} cell {i}"
            meta = cell.metadata.get("nbgrader")
            counts = {m: sum(line.strip() == m
                             for line in cell.source.splitlines())
                      for m in _NBGRADER_MARKERS}
            if meta is None:
                if any(counts.values()):
                    problems.append(f"{where}: has nbgrader markers but no "
                                    f"nbgrader metadata")
                continue
            problems += _cell_mark_problems(where, cell, meta, counts)
            gid = meta.get("grade_id")
            if gid in owner:
                problems.append(f"{where}: grade_id {gid!r} is also used in "
                                f"{owner[gid]}")
            owner.setdefault(gid, where)
    return problems


def _cell_mark_problems(where, cell, meta, counts):
    """The problems of one cell's nbgrader metadata (see above)."""
    problems = []
    if meta.get("schema_version") != 3:
        problems.append(f"{where}: schema_version should be 3, "
                        f"got {meta.get('schema_version')!r}")
    for flag in ("grade", "solution", "locked"):
        if not isinstance(meta.get(flag), bool):
            problems.append(f"{where}: {flag!r} should be true or false, "
                            f"got {meta.get(flag)!r}")
    grade, solution, locked = (meta.get(k) for k in
                               ("grade", "solution", "locked"))
    points = meta.get("points")
    if grade and not (isinstance(points, (int, float)) and points > 0):
        problems.append(f"{where}: a graded cell needs points > 0, "
                        f"got {points!r}")
    if not grade and points:
        problems.append(f"{where}: has {points} points but is not graded")
    test_cell = grade and not solution and cell.cell_type == "code"
    if test_cell and not locked:
        problems.append(f"{where}: a test cell should be read-only (locked)")
    if solution and locked:
        problems.append(f"{where}: a solution cell cannot be read-only")
    # Markers where nbgrader does not look for them stay in the release.
    for region, allowed, place in (
            ("SOLUTION", solution, "in a cell not marked as a solution"),
            ("HIDDEN TESTS", test_cell, "outside a test cell")):
        begin = counts[f"### BEGIN {region}"]
        end = counts[f"### END {region}"]
        if begin != end:
            problems.append(f"{where}: {begin} BEGIN {region} but {end} END "
                            f"{region} markers")
        if begin and not allowed:
            problems.append(f"{where}: {region.lower()} {place} would reach "
                            f"the students")
    return problems


# ---- claims -----------------------------------------------------------------
def cell_text_output(cell):
    """Everything a code cell showed as text: printed streams, results and
    displayed values (``text/plain``), and error messages."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


def _one_line(text):
    """``text`` with every run of white space made one space."""
    return " ".join(text.split())


def _canonical_shape(text):
    """A printed shape with every unknown size spelled the same way."""
    return text.replace("?", "None").replace(" ", "")


def _range_problems(i, claim, prose, output, executed):
    """The problems of one range claim (see the module docstring)."""
    printed, between, stated = (claim.get(k) for k in
                                ("printed", "between", "stated"))
    if not (isinstance(printed, str) and printed.count("{}") == 1
            and isinstance(stated, str) and stated
            and isinstance(between, list) and len(between) == 2
            and any(b is not None for b in between)
            and all(b is None or isinstance(b, (int, float))
                    for b in between)):
        return [f"cell {i}: a range claim needs 'printed' with one {{}}, "
                f"'between' as [low, high] (null for an open side) and "
                f"'stated', got {claim!r}"]
    problems = []
    if _one_line(stated) not in prose:
        problems.append(f"cell {i}: states {stated!r} but the markdown above "
                        f"does not say it")
    named = {float(n) for n in re.findall(_NUMBER, stated)}
    for bound in between:
        if bound is not None and float(bound) not in named:
            problems.append(f"cell {i}: the range {between} has a bound "
                            f"{bound} that {stated!r} does not name")
    if not executed:
        return problems
    before, after = (re.escape(part) for part in printed.split("{}"))
    found = re.search(f"{before}({_NUMBER}){after}", output)
    low, high = between
    if found is None:
        problems.append(f"cell {i}: nothing like {printed!r} in the output "
                        f"{output[-300:]!r}")
    elif not ((low is None or float(found[1]) >= low)
              and (high is None or float(found[1]) <= high)):
        problems.append(f"cell {i}: the prose says {stated!r} but the output "
                        f"prints {found[0]!r}")
    return problems


def _markdown_problems(i, cell, below, executed):
    """Shapes and amounts of time that the markdown cell ``i`` states."""
    shapes = _SHAPE.findall(cell.source)
    if shapes and (below is None or below.cell_type != "code"):
        return [f"cell {i}: prose states {shapes} but no code cell follows "
                f"to show them"]
    problems = []
    expected = below.metadata.get("expect", []) if below is not None else []
    for shape in shapes:
        if shape not in expected:
            problems.append(f"cell {i}: prose states `{shape}` but the code "
                            f"cell below does not expect it "
                            f"(expects {expected})")
    if executed and below is not None:
        printed = set(_PRINTED_SHAPE.findall(cell_text_output(below)))
        for shape in shapes:
            other = sorted(p for p in printed if p != shape and
                           _canonical_shape(p) == _canonical_shape(shape))
            missing = [p for p in other if f"`{p}`" not in cell.source]
            if missing:
                problems.append(f"cell {i}: prose states `{shape}` but the "
                                f"output also writes it as {missing}; name "
                                f"that spelling too")
    if below is not None and TIMING_TAG in below.metadata.get("tags", []):
        for found in _PROSE_TIME.finditer(cell.source):
            problems.append(f"cell {i}: states the time {found[0]!r} above a "
                            f"timing cell; measured times depend on the "
                            f"machine, so let the output give them")
    return problems


def _code_problems(i, cell, above, executed):
    """The claims of the code cell ``i`` against its prose and output."""
    expect = cell.metadata.get("expect", [])
    if not isinstance(expect, list) or not all(
            (isinstance(e, str) and e) or isinstance(e, dict) for e in expect):
        return [f"cell {i}: metadata 'expect' must be a list of non-empty "
                f"strings and range claims, got {expect!r}"]
    prose = above.source if above is not None and \
        above.cell_type == "markdown" else ""
    # Markdown wraps lines anywhere: compare with single spaces.
    prose = _one_line(prose)
    output = cell_text_output(cell)
    problems = []
    for claim in expect:
        if isinstance(claim, dict):
            problems += _range_problems(i, claim, prose, output, executed)
            continue
        if _one_line(claim) not in prose:
            problems.append(f"cell {i}: expects {claim!r} but the markdown "
                            f"above does not state it")
        if executed and claim not in output:
            problems.append(f"cell {i}: the prose claims {claim!r} but the "
                            f"output is {output[-300:]!r}")
    if executed and TIMING_TAG not in cell.metadata.get("tags", []):
        times = _PRINTED_TIME.findall(output)
        if times:
            problems.append(f"cell {i}: prints times such as {times[0]!r}; "
                            f"tag it {TIMING_TAG!r}")
    return problems


def claim_problems(nb, executed=True):
    """Where the prose and the outputs of ``nb`` disagree.

    With ``executed=False`` only the prose side is checked (useful before
    running the notebook). Returns a list of messages; empty means fine.
    """
    problems = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        below = cells[i + 1] if i + 1 < len(cells) else None
        above = cells[i - 1] if i > 0 else None
        if cell.cell_type == "markdown":
            problems += _markdown_problems(i, cell, below, executed)
        elif cell.cell_type == "code":
            problems += _code_problems(i, cell, above, executed)
    return problems


# ---- running ----------------------------------------------------------------
def execute(path, timeout=CELL_TIMEOUT_S):
    """Run the notebook at ``path`` top to bottom in a fresh ``python3``
    kernel, from its own folder, and return the executed copy.

    Raises ``nbclient.exceptions.CellExecutionError`` on the first error and
    ``CellTimeoutError`` when one cell runs longer than ``timeout`` seconds.
    """
    from nbclient import NotebookClient
    nb = read(path)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
