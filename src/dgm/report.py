"""The run report of ``dgm report``: one table of every run's numbers, as text and as an HTML page with pictures.

Numbers are labelled as what they are (see ``GenerativeModel.likelihood``). An exact negative log-likelihood reads
``NLL = 1.02``. A lower bound on the log-likelihood (ELBO, IWAE, dequantized flows, diffusion VLB) bounds the NLL
from above and reads ``NLL ≤ 85.3``. A model without a likelihood reads ``—``. NLL is in nats per example.

Where the data set knows its entropy ``H(p)``, the report shows the gap ``NLL − H``. The test NLL estimates the
cross-entropy ``E_p[−log q] = H(p) + KL(p ‖ q)``, so the gap estimates ``KL(p ‖ q)`` for an exact likelihood and
bounds it from above for a lower bound.

It reads run folders through :class:`dgm.run_folder.RunFolder`: ``config.json`` (``{"model": name, "config":
{...}}``), ``run.json`` (``{"data": name, "train": {...}, "seconds": float, ...}``), ``metrics.json`` once evaluated,
and the PNG pictures.
"""
from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from dgm.metrics.likelihood import RELATIONS
from dgm.run_folder import CONFIG_FILE, METRICS_FILE, RUN_FILE, RunFolder
from dgm.run_folder import find_runs as run_folders_below

COLUMNS = ("run", "model", "data", "likelihood", "NLL (nats)", "bits/dim", "entropy (nats)", "gap (nats)", "time")
MISSING = "—"


@dataclass(frozen=True)
class RunSummary:
    """What one run folder says about itself; ``metrics`` is ``None`` until the run is evaluated."""

    folder: RunFolder
    config: dict
    run: dict
    metrics: dict | None

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def pictures(self) -> list[Path]:
        return self.folder.pictures()


def read_summary(run_dir: str | Path) -> RunSummary:
    """Read a run folder's JSON files; a folder that is not a run raises ``ValueError``."""
    folder = RunFolder(run_dir)
    record = folder.read_record()
    return RunSummary(folder=folder, config=folder.read_config(), run=record, metrics=folder.read_metrics())


def find_runs(root: str | Path) -> list[Path]:
    """``root`` itself if it is a run folder, else every run folder below it, sorted."""
    return [folder.path for folder in run_folders_below(root)]


# -- the cells of one row ---------------------------------------------------------------------------------------------
def row_cells(run: RunSummary) -> dict[str, str]:
    """The table row of ``run``: one text per column of :data:`COLUMNS`."""
    seconds = run.run.get("seconds")
    cells = {"run": run.name, "model": str(run.config["model"]), "data": str(run.run.get("data", MISSING)),
             "time": MISSING if seconds is None else _duration(_number_in(run, "seconds", seconds))}
    cells |= _likelihood_cells(run)
    return {column: cells[column] for column in COLUMNS}


def _likelihood_cells(run: RunSummary) -> dict[str, str]:
    """The likelihood, NLL, bits/dim, entropy and gap cells, each labelled as exact or as a bound."""
    empty = dict.fromkeys(("NLL (nats)", "bits/dim", "entropy (nats)", "gap (nats)"), MISSING)
    if run.metrics is None:
        return {"likelihood": "not evaluated"} | empty
    likelihood = run.metrics.get("likelihood")
    nll, bits, entropy = (run.metrics.get(key) for key in ("nll_nats", "bits_per_dim", "entropy_nats"))
    if likelihood is not None and likelihood not in RELATIONS:
        raise ValueError(f"{run.path / METRICS_FILE}: likelihood must be \"exact\", \"lower_bound\" or null, "
                         f"got {likelihood!r}")
    if likelihood is None and (nll is not None or bits is not None):
        raise ValueError(f"{run.path / METRICS_FILE} gives a likelihood number but its likelihood is null: "
                         "say whether it is \"exact\" or a \"lower_bound\"")
    cells = empty | {"likelihood": "none" if likelihood is None else likelihood.replace("_", " ")}
    if entropy is not None:
        entropy = _number_in(run, "entropy_nats", entropy)
        cells["entropy (nats)"] = _number(entropy)
    if likelihood is None:
        return cells
    relation = RELATIONS[likelihood]
    bound = "≤ " if likelihood == "lower_bound" else ""  # bits/dim and gap carry the bound's sign too
    if nll is not None:
        nll = _number_in(run, "nll_nats", nll)
        cells["NLL (nats)"] = f"NLL {relation} {_number(nll)}"
        if entropy is not None:
            cells["gap (nats)"] = bound + _number(nll - entropy)
    if bits is not None:
        cells["bits/dim"] = bound + _number(_number_in(run, "bits_per_dim", bits))
    return cells


def _number_in(run: RunSummary, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{run.name}: {key} must be a number, got {value!r}")
    return float(value)


def _number(value: float) -> str:
    """Three significant digits, never in exponent form: 1.02, 85.3, 6412, 0.0123."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def _duration(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# -- text and HTML ----------------------------------------------------------------------------------------------------
def report_table(run_dirs: list[str | Path]) -> str:
    """The runs' numbers as a plain-text table with aligned columns, for the terminal."""
    rows = [COLUMNS, *(tuple(row_cells(run).values()) for run in _read_runs(run_dirs))]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Write one self-contained HTML page (no JavaScript, no external CSS) with the table and each run's pictures.

    Pictures are linked relative to the page's folder, so the page and the runs can be moved together.
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"the report is an HTML page: its path must end in .html, got {out}")
    runs = _read_runs(run_dirs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_page(runs, out.parent), encoding="utf-8")
    return out


def _read_runs(run_dirs: list[str | Path]) -> list[RunSummary]:
    if not run_dirs:
        raise ValueError("no run folders given")
    return [read_summary(run_dir) for run_dir in run_dirs]


STYLE = """body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; white-space: nowrap; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
img { max-width: 600px; }"""

EXPLANATION = ("NLL is the negative log-likelihood of the test set in nats per example: “NLL = x” is exact, "
               "“NLL ≤ x” an upper bound from a lower bound on the likelihood, “—” no likelihood. The gap is "
               "NLL − entropy of the data: it estimates KL(data ‖ model), or bounds it from above for “≤”.")


def _page(runs: list[RunSummary], page_folder: Path) -> str:
    header = "".join(f"<th>{_escape(column)}</th>" for column in COLUMNS)
    rows = "\n".join(_table_row(index, run) for index, run in enumerate(runs))
    sections = "\n".join(_section(index, run, page_folder) for index, run in enumerate(runs))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>dgm report</title>\n'
            f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>dgm report</h1>\n<p>{_escape(EXPLANATION)}</p>\n"
            f"<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n"
            f"{sections}\n</body>\n</html>\n")


def _table_row(index: int, run: RunSummary) -> str:
    cells = row_cells(run)
    first = f'<td><a href="#run-{index}">{_escape(cells.pop("run"))}</a></td>'
    return f"<tr>{first}{''.join(f'<td>{_escape(cell)}</td>' for cell in cells.values())}</tr>"


def _section(index: int, run: RunSummary, page_folder: Path) -> str:
    details = {CONFIG_FILE: run.config, RUN_FILE: run.run, METRICS_FILE: run.metrics}
    files = "\n".join(f"<h3>{_escape(name)}</h3>\n<pre>{_escape(json.dumps(content, indent=2))}</pre>"
                      for name, content in details.items() if content)
    figures = "\n".join(
        f'<figure><img src="{_escape(_link(picture, page_folder))}" alt="{_escape(picture.name)}">'
        f"<figcaption>{_escape(picture.name)}</figcaption></figure>" for picture in run.pictures)
    return (f'<section id="run-{index}">\n<h2>{_escape(run.name)}</h2>\n'
            f"<details><summary>{_escape(_relative(run.path, page_folder))}</summary>\n{files}\n</details>\n"
            f"{figures or '<p>no pictures</p>'}\n</section>")


def _relative(target: Path, page_folder: Path) -> str:
    return Path(os.path.relpath(target.resolve(), page_folder.resolve())).as_posix()


def _link(target: Path, page_folder: Path) -> str:
    """URL of ``target`` relative to the page's folder, percent-encoded."""
    return quote(_relative(target, page_folder))


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
