"""Feedback for students: every test, its points and why it failed.

Built from the JSON reports of ``autograde grade``; the reports hold test
titles (the first comment line of a test cell) and messages, never test
code, so the hidden tests cannot leak through feedback.
"""

import html
from pathlib import Path

_STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; padding: .3em .6em; text-align: left;
         vertical-align: top; }
.passed { color: #176317; } .failed, .error { color: #a11; }
.timeout, .crashed { color: #a15c00; font-weight: bold; }
.note { background: #fff6dd; padding: .5em; }
"""


def render(result):
    """The feedback page of one student (a string of HTML)."""
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
             f"<title>Feedback: {esc(result['assignment'])}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{esc(result['assignment'])}: feedback for "
             f"{esc(result['student'])}</h1>",
             f"<p>Autograded score: <b>{result['score']:g} / "
             f"{result['max_score']:g}</b> (written answers are graded by "
             f"hand and are not included).</p>"]
    if result.get("grader_error"):
        parts.append("<p class='note'>Your work could not be graded "
                     "automatically; your instructor has been told.</p>")
    for problem in result.get("problems", []):
        parts.append(f"<p class='note'>{esc(problem)}</p>")
    for nb in result["notebooks"]:
        parts.append(f"<h2>{esc(nb['notebook'])}: {nb['score']:g} / "
                     f"{nb['max_score']:g}</h2>")
        if nb.get("tamper"):
            parts.append("<p class='note'>Protected cells were changed; the "
                         "tests were run from the original copy:<br>" +
                         "<br>".join(esc(n) for n in nb["tamper"]) + "</p>")
        parts.append("<table><tr><th>test</th><th>points</th><th>result</th>"
                     "<th>why</th></tr>")
        for t in nb["tests"]:
            parts.append(
                f"<tr><td>{esc(t['title'])}</td>"
                f"<td>{t['score']:g} / {t['max_points']:g}</td>"
                f"<td class='{esc(t['status'])}'>{esc(t['status'])}</td>"
                f"<td>{esc(t['message'])}</td></tr>")
        parts.append("</table>")
        for p in nb.get("cell_problems", []):
            parts.append(f"<p class='note'>Code cell {p['cell']}: "
                         f"{esc(p['status'])}: {esc(p['message'])}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_feedback(root, result):
    """Write ``feedback/<student>/<assignment>/autograde.html``; returns
    its path."""
    out = Path(root) / "feedback" / result["student"] / result["assignment"]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "autograde.html"
    path.write_text(render(result), encoding="utf-8")
    return path
