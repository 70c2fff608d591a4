"""Tests of dgm.report: honest likelihood labels, the text table, the HTML page and its links, bad run folders."""
import json
from html.parser import HTMLParser
from urllib.parse import unquote

import numpy as np
import pytest
from matplotlib.image import imsave

from dgm import report

FLOW = "realnvp & <moons>"  # a name that needs escaping in HTML and quoting in URLs


def make_run(folder, model, data=None, seconds=None, metrics=None, pictures=()):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": model, "config": {"hidden": 64}}))
    if data is not None:
        (folder / "run.json").write_text(json.dumps({"data": data, "data_options": {}, "train": {"lr": 1e-3},
                                                      "seconds": seconds}))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    for name in pictures:
        imsave(folder / name, np.zeros((2, 2)), cmap="gray")
    return folder


@pytest.fixture
def runs(tmp_path):
    return [
        make_run(tmp_path / "runs" / FLOW, "realnvp", "moons", 12.34,
                 {"nll_nats": 1.0234, "bits_per_dim": 0.7383, "likelihood": "exact", "entropy_nats": 1.0,
                  "n_test": 20000},
                 pictures=("density.png", "curves.png", "a.png", "samples.png")),
        make_run(tmp_path / "runs" / "vae", "vae", "mnist-binary", 3725.0,
                 {"nll_nats": 85.27, "bits_per_dim": 0.1569, "likelihood": "lower_bound", "entropy_nats": 80.0},
                 pictures=("samples.png",)),
        make_run(tmp_path / "runs" / "gan", "wgan-gp", "eight-gaussians", 61.0,
                 {"likelihood": None, "entropy_nats": 2.5}),
        make_run(tmp_path / "runs" / "fresh", "pixelcnn", "mnist-binary", 5.0),
    ]


class PageReader(HTMLParser):
    """Collects the text of table cells (row by row) and the src of images, unescaped by the parser."""

    def __init__(self):
        super().__init__()
        self.rows, self.images, self.tags, self._cell = [], [], set(), None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self._cell)
            self._cell = None


def test_cells_label_exact_values_and_bounds_honestly(runs):
    flow, vae, gan, fresh = (report.row_cells(report.read_summary(run)) for run in runs)
    assert flow == {"run": FLOW, "model": "realnvp", "data": "moons", "likelihood": "exact",
                    "NLL (nats)": "NLL = 1.02", "bits/dim": "0.738", "entropy (nats)": "1.00",
                    "gap (nats)": "0.0234", "time": "12.3 s"}
    assert vae["likelihood"] == "lower bound" and vae["NLL (nats)"] == "NLL ≤ 85.3"
    assert vae["bits/dim"] == "≤ 0.157" and vae["gap (nats)"] == "≤ 5.27"  # KL(data ‖ model) ≤ 85.27 − 80
    assert vae["time"] == "1 h 02 min"
    assert gan["likelihood"] == "none" and gan["NLL (nats)"] == gan["bits/dim"] == gan["gap (nats)"] == "—"
    assert gan["entropy (nats)"] == "2.50" and gan["time"] == "1 min 01 s"
    assert fresh["likelihood"] == "not evaluated" and fresh["NLL (nats)"] == "—"


@pytest.mark.parametrize("value, text", [(1.0234, "1.02"), (85.27, "85.3"), (6412.3, "6412"), (0.012345, "0.0123"),
                                         (0.0, "0"), (-0.5, "-0.500")])
def test_numbers_keep_three_significant_digits(value, text):
    assert report._number(value) == text


def test_report_table_aligns_columns(runs):
    lines = report.report_table(runs).splitlines()
    assert len(lines) == 2 + len(runs)
    header, rule, flow, vae = lines[:4]
    assert set(rule) <= {"-", " "}
    for column, cell in (("NLL (nats)", "NLL = 1.02"), ("bits/dim", "0.738"), ("time", "12.3 s")):
        assert flow.index(cell) == header.index(column)
    assert vae.index("NLL ≤ 85.3") == header.index("NLL (nats)")
    assert "not evaluated" in lines[-1]


def test_html_page_escapes_names_and_links_pictures(runs, tmp_path):
    page = report.write_report(runs, tmp_path / "site" / "report.html")
    text = page.read_text(encoding="utf-8")
    assert "realnvp &amp; &lt;moons&gt;" in text and "<moons>" not in text
    assert "<script" not in text and "<link" not in text  # self-contained, no JavaScript
    reader = PageReader()
    reader.feed(text)
    assert reader.rows[0] == list(report.COLUMNS)
    assert reader.rows[1][:5] == [FLOW, "realnvp", "moons", "exact", "NLL = 1.02"]
    assert reader.rows[2][4] == "NLL ≤ 85.3" and reader.rows[4][3] == "not evaluated"
    flow_images = [src for src in reader.images if "moons" in unquote(src)]
    assert [src.rsplit("/", 1)[1] for src in flow_images] == ["samples.png", "curves.png", "a.png", "density.png"]
    assert flow_images[0] == "../runs/realnvp%20%26%20%3Cmoons%3E/samples.png"
    assert all((page.parent / unquote(src)).resolve().is_file() for src in reader.images)
    assert len(reader.images) == 5


def test_bad_run_folders_are_refused(tmp_path, runs):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty is not a run folder"):
        report.report_table([runs[0], tmp_path / "empty"])
    with pytest.raises(ValueError, match="no run folders"):
        report.write_report([], tmp_path / "r.html")
    with pytest.raises(ValueError, match=".html"):
        report.write_report(runs, tmp_path / "r.txt")


@pytest.mark.parametrize("metrics, match", [
    ({"nll_nats": 1.0, "likelihood": "approximate"}, "exact"),
    ({"nll_nats": 1.0, "likelihood": None}, "null"),
    ({"nll_nats": 1.0}, "null"),
    ({"nll_nats": "1.0", "likelihood": "exact"}, "nll_nats must be a number"),
])
def test_inconsistent_metrics_are_refused(tmp_path, metrics, match):
    run = make_run(tmp_path / "run", "made", "histogram", 1.0, metrics)
    with pytest.raises(ValueError, match=match):
        report.report_table([run])


def test_broken_json_is_refused(tmp_path):
    run = make_run(tmp_path / "run", "made", "histogram")
    (run / "metrics.json").write_text("{nll")
    with pytest.raises(ValueError, match="metrics.json is not valid JSON"):
        report.read_summary(run)
    (run / "config.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(ValueError, match="must name the model"):
        report.read_summary(run)


def test_find_runs(runs, tmp_path):
    assert report.find_runs(tmp_path / "runs") == sorted(runs)
    assert report.find_runs(runs[1]) == [runs[1]]
    with pytest.raises(ValueError, match="no run folders"):
        report.find_runs(tmp_path / "runs" / FLOW / "nothing-here")
