"""``spikedyn report``: one self-contained report.html for a sweep (the small gain study of Liu et al.)
and for a single spiking run, opened in headless Chromium: the page loads, every figure renders (non-zero
natural size), the console has no error.

Without Chromium + chromedriver + Selenium the browser checks are skipped with the reason; CI
(``.ci/run``) installs them and sets SPIKEDYN_REQUIRE_BROWSER=1, so there a missing browser fails.
"""
from __future__ import annotations

import base64
import re
import shutil
import sys
from pathlib import Path

import pytest

import spikedyn
from spikedyn.cli import main

sys.path.insert(0, str(Path(__file__).parent))
import browser  # noqa: E402  (tests/browser.py)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reports(gain_study, tmp_path_factory):
    spec, sweep = gain_study  # the small gain study of Liu et al. (tests/conftest.py)
    root = tmp_path_factory.mktemp("report")
    # one failing setting, so that the report's failed-trials table has a row
    failing = {"name": "with-failure", "base": spec["base"], "grid": {"seed": [0, 1], "init": ["orthogonal", "nope"]}}
    spikedyn.sweep(failing, out_dir=root / "failing", progress=False)
    run = root / "lif"
    assert main(["train", "--task", "rdm", "--task-param", "dt=10", "--model", "lif", "--hidden", "12", "--steps",
                 "4", "--eval-every", "2", "--eval-trials", "16", "--batch-size", "8", "--no-progress",
                 "--run-dir", str(run)]) == 0  # fmt: skip
    # what `spikedyn deploy` writes into a run (a real one, of the RDM network in docs/hardware.md)
    shutil.copy(ROOT / "docs" / "results" / "lava_deploy_rdm.json", run / "deploy.json")
    assert main(["report", str(sweep.out_dir), "--out", str(root / "sweep.html"), "--json"]) == 0
    return {"sweep": spikedyn.write_report(sweep.out_dir, root / "sweep.html"),
            "failing": spikedyn.write_report(root / "failing"), "run": spikedyn.write_report(run)}


def _imgs(text: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', text)


def test_reports_are_self_contained_and_show_what_the_directory_holds(reports):
    sweep, run = reports["sweep"].read_text(), reports["run"].read_text()
    for text in (sweep, run, reports["failing"].read_text()):
        assert "<script" not in text and "<link" not in text and not re.search(r'(src|href)="(https?:)?//', text)
        srcs = _imgs(text)
        assert srcs and all(s.startswith(("data:image/png;base64,", "data:image/svg+xml;base64,")) for s in srcs)
        for s in srcs:  # every embedded figure is a real PNG
            assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for needle in ("accuracy table", "learning curves", "accuracy against model_params.gain", "Lyapunov spectra",
                   "failed trials", "best trial", "all trials", ">rflo<"):  # fmt: skip
        assert needle in sweep, needle
    assert sweep.count("<tr>") >= 8 + 24  # 8 settings in the accuracy table, 24 trials
    for needle in ("learning curves", "held-out scores", "spike raster", "outputs and targets", "torch vs Lava",
                   "lava-sim fixed", "10281686"):  # fmt: skip
        assert needle in run, needle
    failing = reports["failing"].read_text()
    assert re.search(r'<td class="[^"]*failed">ValueError: unknown init', failing)


def test_bad_report_paths_are_one_line_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a directory" in err[0] and "neither a run directory" in err[1]


def test_report_out_an_existing_directory_writes_report_html_there(tmp_path, capsys):
    """C1 of review 2: ``--out DIR`` (an existing directory) writes ``DIR/report.html``, not an error
    naming a temp file; a report.html that is itself a directory is one line."""
    run = tmp_path / "run"
    assert main(["train", "--task", "rdm", "--task-param", "dt=50", "--hidden", "6", "--steps", "2",
                 "--eval-every", "2", "--eval-trials", "8", "--batch-size", "4", "--no-progress",
                 "--run-dir", str(run)]) == 0  # fmt: skip
    (tmp_path / "pages").mkdir()
    assert main(["report", str(run), "--out", str(tmp_path / "pages"), "--json"]) == 0
    page = tmp_path / "pages" / "report.html"
    assert page.is_file() and "learning curves" in page.read_text()
    assert str(page) in capsys.readouterr().out
    (tmp_path / "blocked" / "report.html").mkdir(parents=True)
    assert main(["report", str(run), "--out", str(tmp_path / "blocked")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "report.html is a directory" in err[0] and ".tmp" not in err[0], err
    # a directory of the user's own (a config.json that is not a run's) is no run: its report.html stays
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": 1}')
    (mine / "report.html").write_text("my page")
    assert main(["report", str(mine)]) == 2
    assert "neither a run directory" in capsys.readouterr().err and (mine / "report.html").read_text() == "my page"


@pytest.mark.browser  # skipped without Chromium, unless SPIKEDYN_REQUIRE_BROWSER=1 (CI): tests/conftest.py
@pytest.mark.parametrize("which", ["sweep", "run", "failing"])
def test_report_renders_in_headless_chromium(reports, which, tmp_path):
    assert browser.find_browser() is not None, (
        "headless Chromium missing: apt-get install chromium chromium-driver; pip install selenium")
    page = browser.open_page(reports[which], screenshot=tmp_path / f"{which}.png")
    assert page.ready_state == "complete" and page.title.startswith("spikedyn")
    n = len(_imgs(reports[which].read_text()))
    assert len(page.images) == n >= 2
    for img in page.images:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    assert page.console_errors == []
    assert (tmp_path / f"{which}.png").stat().st_size > 10_000
