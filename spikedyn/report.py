"""``spikedyn report RUN_OR_SWEEP``: one self-contained HTML page for a run directory or a sweep.

Everything is in the one file: figures are PNG (or the run's own SVG) embedded as base64 ``data:`` URIs,
the style sheet is inline, there is no script and nothing is fetched from the network, so the page can
be mailed, archived or opened offline. What it shows depends on what the directory holds:

- a run (``spikedyn train --run-dir`` or one trial of a sweep): configuration, learning curves (training
  loss, held-out loss and accuracy), held-out scores, the trained model on test trials (outputs against
  targets, and a spike raster for spiking models or unit rates for rate models), the Lyapunov spectrum
  when the run has ``lyapunov.json``, the rate/spike/Lava table when ``spikedyn deploy`` wrote
  ``deploy.json``, and every figure (PNG/SVG) the run wrote;
- a sweep (``spikedyn sweep``): the accuracy table (mean ± std over seeds per setting), learning curves
  with seed bands, scores against each numeric axis, largest Lyapunov exponents when measured, the
  failed trials with their errors, the best trial's model, and the table of every trial.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes

REPORT_FILE = "report.html"
SEED_AXES = ("seed",)
MAX_CURVES = 12  # lines per learning-curve panel (more settings: the first ones, in sweep order)

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em;
  margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f7f7f7; padding: .7em; overflow-x: auto; font-size: .8em; }
.failed { color: #a00; } .muted { color: #777; font-size: .85em; }
"""


# -- HTML pieces -------------------------------------------------------------------------------------
def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _img_tag(data: bytes, mime: str, alt: str, caption: str = "") -> str:
    b64 = base64.b64encode(data).decode("ascii")
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:{mime};base64,{b64}" alt="{_esc(alt)}">{cap}</figure>'


def figure_html(fig: Any, alt: str, caption: str = "") -> str:
    """A matplotlib figure as an embedded PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return _img_tag(buf.getvalue(), "image/png", alt, caption)


def file_figure_html(path: Path) -> str | None:
    """An image file of the run (PNG or SVG) embedded as it is; None for anything else."""
    mime = {".png": "image/png", ".svg": "image/svg+xml"}.get(path.suffix.lower())
    if mime is None:
        return None
    return _img_tag(path.read_bytes(), mime, path.name, path.name)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table_html(rows: list[dict[str, Any]], columns: list[str] | None = None, failed_col: str | None = None) -> str:
    """A plain HTML table (numbers right-aligned, text left-aligned)."""
    if not rows:
        return '<p class="muted">(none)</p>'
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f'<th class="text">{_esc(c)}</th>' for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            cls = "text" if not isinstance(v, (int, float)) or isinstance(v, bool) else ""
            if failed_col and c == failed_col and v not in (None, "ok"):
                cls += " failed"
            cells.append(f'<td class="{cls.strip()}">{_esc(_fmt(v))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, sections: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_esc(title)}</h1>{''.join(sections)}"
            "<p class=\"muted\">Written by <code>spikedyn report</code>.</p></body></html>\n")  # fmt: skip


def _details(summary: str, obj: Any) -> str:
    """A collapsed block of indented JSON."""
    return f"<details><summary>{_esc(summary)}</summary><pre>{_esc(json.dumps(obj, indent=2))}</pre></details>"


def _log_if_wide(ax: Any, values: Any) -> None:
    """Log y axis when positive values span more than two decades (a diverging seed would flatten the rest)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size and v.min() > 0 and v.max() / v.min() > 100:
        ax.set_yscale("log")


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{_esc(title)}</h2>{''.join(parts)}</section>"


# -- reading runs ------------------------------------------------------------------------------------
def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` (one per training step; [] when absent)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a ``spikedyn train`` run directory (``spikedyn.learning.checkpoint.is_run_dir``:
    its config.json is a run's), so that a report is never written into someone else's directory."""
    from .learning.checkpoint import is_run_dir as recognised

    return recognised(path)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- figures of one run ------------------------------------------------------------------------------
def learning_curve_figure(history: list[dict[str, Any]], title: str = "") -> Any:
    """Training loss per step, held-out loss and accuracy at the evaluation steps."""
    plt = _plt()
    acc = [(r["step"], r["accuracy"]) for r in history if "accuracy" in r]
    fig, axes = plt.subplots(1, 2 if acc else 1, figsize=(10 if acc else 5.5, 3.4), squeeze=False)
    ax = axes[0][0]
    ax.plot([r["step"] for r in history], [r["loss"] for r in history], lw=1, label="training loss")
    ev = [(r["step"], r["eval_loss"]) for r in history if "eval_loss" in r]
    if ev:
        ax.plot(*zip(*ev), "o-", ms=3, label="held-out loss")
    _log_if_wide(ax, [r["loss"] for r in history])
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.legend(frameon=False, fontsize=8)
    if acc:
        axes[0][1].plot(*zip(*acc), "o-", ms=3, color="C2")
        axes[0][1].set_ylim(0, 1.02)
        axes[0][1].set_xlabel("training step")
        axes[0][1].set_ylabel("held-out accuracy")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def load_trained(run_dir: Path) -> tuple[Any, Any] | None:
    """(model, task) of a finished run (``spikedyn.load_run``: weights read with ``weights_only=True``, no
    code runs from the files), or None when the run has no ``model.pt``."""
    from .runs import load_run

    if not (Path(run_dir) / "model.pt").is_file():
        return None
    run = load_run(run_dir)
    if not isinstance(run.config.get("task"), dict):
        return None
    return run.model, run.task


def model_figures(model: Any, task: Any, seed: int = 0) -> list[str]:
    """The trained model on test trials: outputs vs targets, and a spike raster (spiking) or unit rates."""
    import numpy as np
    import torch

    plt = _plt()
    batch = task.sample(4, np.random.default_rng([seed, 777]), split="test")
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        roll = model(torch.as_tensor(batch.inputs, dtype=model.W_out.dtype))
    y, r = roll.y[:, 0].float().numpy(), roll.r[:, 0].float().numpy()
    dt = float(getattr(task, "dt", 1.0))
    t = np.arange(y.shape[0]) * dt
    out = []
    fig, ax = plt.subplots(figsize=(8, 2.8))
    for o in range(y.shape[1]):
        ax.plot(t, y[:, o], lw=1.2, color=f"C{o}", label=f"output {o}")
        ax.plot(t, batch.targets[:, 0, o], lw=0.8, ls="--", color=f"C{o}")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("output")
    ax.set_title("test trial 0: outputs (solid) and targets (dashed)", fontsize=9)
    ax.legend(frameon=False, fontsize=7, ncol=min(4, y.shape[1]))
    fig.tight_layout()
    out.append(figure_html(fig, "outputs and targets", f"{task.name}: the trained model on a test trial"))
    spiking = getattr(model, "kind", "") == "spiking"
    fig, ax = plt.subplots(figsize=(8, 3.0))
    if spiking:
        u0 = torch.as_tensor(batch.inputs[:, :1], dtype=model.W_out.dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            spikes = model.spike_trains(u0)[:, 0].float().numpy()  # every neuron substep [T * substeps, N]
        step = dt / max(1, spikes.shape[0] // max(1, y.shape[0]))
        ti, ni = np.nonzero(spikes > 0)
        ax.scatter(ti * step, ni, s=3, marker="|", color="k", linewidths=0.6)
        ax.set_ylabel("neuron")
        rate = float(spikes.sum() / (spikes.shape[1] * spikes.shape[0] * step / 1000.0)) if spikes.size else 0.0
        caption = f"spike raster of test trial 0 ({step:g} ms neuron steps; mean {rate:.3g} Hz per neuron)"
    else:
        im = ax.imshow(r.T, aspect="auto", origin="lower", cmap="viridis",
                       extent=(t[0], t[-1] + dt, -0.5, r.shape[1] - 0.5), interpolation="nearest")  # fmt: skip
        fig.colorbar(im, ax=ax, label="rate")
        ax.set_ylabel("unit")
        caption = "unit rates of test trial 0"
    ax.set_xlabel("time (ms)")
    ax.set_xlim(t[0], t[-1] + dt)
    fig.tight_layout()
    out.append(figure_html(fig, "spike raster" if spiking else "unit rates", caption))
    return out


def lyapunov_figure(spectra: dict[str, list[float]], unit: str) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for label, exps in spectra.items():
        ax.plot(range(1, len(exps) + 1), exps, "o-", ms=3, label=label)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("exponent index i")
    ax.set_ylabel(f"λ_i ({unit})")
    if 1 < len(spectra) <= MAX_CURVES:
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def _run_sections(run_dir: Path, heading: str = "") -> list[str]:
    cfg = _read_json(run_dir / "config.json") or {}
    summary = _read_json(run_dir / "summary.json") or {}
    history = read_metrics(run_dir)
    sections = []
    if cfg:
        sections.append(_section(f"{heading}configuration", _details("config.json", cfg)))
    if history:
        sections.append(_section(f"{heading}learning curves", figure_html(
            learning_curve_figure(history), "learning curves",
            "training loss per step; held-out loss and accuracy at the evaluation steps")))  # fmt: skip
    final = summary.get("final") or next((r for r in reversed(history) if "eval_loss" in r), None)
    if final:
        rows = [{"score": k, "value": v} for k, v in final.items()]
        extra = f"<p>steps run: {summary.get('steps', history[-1]['step'] if history else '?')}; stopped early: "\
                f"{summary.get('stopped_early', False)}</p>"  # fmt: skip
        sections.append(_section(f"{heading}held-out scores (end of training)", table_html(rows), extra))
    trained = load_trained(run_dir)
    if trained is not None:
        seed = cfg.get("train", {}).get("seed", 0) if isinstance(cfg.get("train"), dict) else 0
        seed = int(seed[0] if isinstance(seed, list) and seed else seed)  # one per member: member 0's (sweeps)
        model, task = trained
        title = "the trained model"
        if getattr(model, "kind", "") == "population":  # a Population run: its member 0, on member 0's trials
            model, title = model.member(0), f"the trained model (member 0 of {model.size})"
        sections.append(_section(f"{heading}{title}", *model_figures(model, task, seed=seed)))
    deploy = _read_json(run_dir / "deploy.json")
    if isinstance(deploy, dict) and deploy.get("runs"):
        rows, seen = [], set()
        for entry in deploy["runs"].values():
            for row in entry.get("rows", []):
                if row.get("body") not in seen:
                    seen.add(row.get("body"))
                    rows.append({**row, "trials": entry.get("trials")})
        cols = ["body", "trials", "accuracy", "spike_agreement", "trials_identical", "spikes", "seconds"]
        sections.append(_section(f"{heading}torch vs Lava (spikedyn deploy)", table_html(rows, cols),
                                 "<p class=\"muted\">spike agreement: the fraction of equal (step, trial, neuron) "
                                 "entries against the torch run Lava must equal (float64, or the Loihi 2 body)</p>"))
    lyap = _read_json(run_dir / "lyapunov.json")
    if lyap:
        sections.append(_section(f"{heading}Lyapunov spectrum", figure_html(
            lyapunov_figure({"": lyap["exponents"]}, lyap.get("unit", "")), "Lyapunov spectrum",
            f"the {lyap['k']} largest exponents on 8 test trials (QR method)")))  # fmt: skip
    own = [h for p in sorted(run_dir.glob("*")) + sorted(run_dir.glob("figures/*"))
           if p.is_file() and p.name != "learning_curve.png" and (h := file_figure_html(p))]  # fmt: skip
    if own:
        sections.append(_section(f"{heading}figures of the run", *own))
    return sections


def run_report(run_dir: str | Path) -> str:
    """The HTML page of one run directory."""
    run_dir = Path(run_dir)
    return page(f"spikedyn run {run_dir.name}", _run_sections(run_dir))


# -- sweeps ------------------------------------------------------------------------------------------
def _setting_label(row: dict[str, Any], axes: list[str]) -> str:
    return ", ".join(f"{a.split('.')[-1]}={_fmt(row[a])}" for a in axes) or "all trials"


def _grouped(df: Any, axes: list[str]) -> list[tuple[dict[str, Any], Any]]:
    if not axes:
        return [({}, df)]
    out = []
    for key, sub in df.groupby(axes, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((dict(zip(axes, key)), sub))
    return out


def accuracy_rows(df: Any, axes: list[str], metrics: list[str]) -> list[dict[str, Any]]:
    """Per setting (the non-seed axes): trials, seeds ok, and mean ± std of each metric over seeds."""
    rows = []
    for setting, sub in _grouped(df, axes):
        ok = sub[sub["status"] == "ok"]
        row: dict[str, Any] = {**setting, "trials": len(sub), "ok": len(ok)}
        for m in metrics:
            vals = ok[m].dropna().astype(float) if m in ok else []
            row[m] = f"{vals.mean():.4g} ± {vals.std(ddof=0):.2g}" if len(vals) else ""
        rows.append(row)
    return rows


def seed_band_figure(root: Path, df: Any, axes: list[str], key: str = "loss", window: int = 1) -> Any | None:
    """Mean ± std over seeds of ``key`` per training step, one line per setting; one panel per value of
    the first categorical axis (e.g. the rule)."""
    import numpy as np

    plt = _plt()
    panel_axis = next((a for a in axes if df[a].map(lambda v: isinstance(v, str)).all()), None)
    panels = list(dict.fromkeys(df[panel_axis])) if panel_axis else [None]
    line_axes = [a for a in axes if a != panel_axis]
    fig, grid = plt.subplots(1, len(panels), figsize=(min(5.2 * len(panels), 15), 3.6), squeeze=False, sharey=True)
    drawn = 0
    for ax, panel in zip(grid[0], panels):
        sub = df if panel_axis is None else df[df[panel_axis] == panel]
        groups = _grouped(sub[sub["status"] == "ok"], line_axes)[:MAX_CURVES]
        colours = plt.cm.viridis(np.linspace(0.0, 0.9, max(1, len(groups))))
        for colour, (setting, g) in zip(colours, groups):
            curves = []
            for run in g["run_dir"]:
                hist = read_metrics(root / run)
                curves.append([r[key] for r in hist if key in r])
            n = min((len(c) for c in curves), default=0)
            if n == 0:
                continue
            c = np.array([cv[:n] for cv in curves], dtype=float)
            if window > 1:
                kernel = np.ones(window) / window
                c = np.array([np.convolve(row, kernel, mode="valid") for row in c])
            x = np.arange(1, c.shape[1] + 1)
            m, s = c.mean(0), c.std(0)
            ax.plot(x, m, color=colour, lw=1.2, label=f"{_setting_label(setting, line_axes)} (n={len(c)})")
            ax.fill_between(x, np.maximum(m - s, c.min(0)), m + s, color=colour, alpha=0.2, lw=0)
            _log_if_wide(ax, c)
            drawn += 1
        ax.set_xlabel("training step")
        ax.set_title(f"{panel_axis} = {panel}" if panel_axis else "", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=7)
        else:
            ax.text(0.5, 0.5, "no finished trial", transform=ax.transAxes, ha="center", color="0.5")
    grid[0][0].set_ylabel(f"training {key} (mean ± std over seeds)")
    fig.tight_layout()
    if drawn == 0:
        plt.close(fig)
        return None
    return fig


def metric_vs_axis_figure(df: Any, axis: str, axes: list[str], metric: str) -> Any:
    """``metric`` (mean ± std over seeds) against a numeric axis, one line per setting of the other axes."""
    import numpy as np

    plt = _plt()
    others = [a for a in axes if a != axis]
    ok = df[(df["status"] == "ok") & df[metric].notna()]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i, (setting, g) in enumerate(_grouped(ok, others)[:MAX_CURVES]):
        stats = g.groupby(axis)[metric].agg(["mean", "std"]).sort_index()
        ax.errorbar(stats.index.astype(float), stats["mean"], yerr=np.nan_to_num(stats["std"].to_numpy()),
                    marker="o", ms=4, capsize=3, color=f"C{i % 10}", label=_setting_label(setting, others))
    ax.set_xlabel(axis)
    ax.set_ylabel(f"held-out {metric}")
    if others:
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def sweep_report(root: str | Path) -> str:
    """The HTML page of a sweep directory (``sweep.parquet`` and the trials' run directories)."""
    from .sweeps import load_sweep

    root = Path(root)
    df = load_sweep(root)
    meta = _read_json(root / "sweep.json") or {}
    cfg = meta.get("config", {})
    axes_all = [c for c in [*(["sample"] if cfg.get("search", "grid") != "grid" else []), *cfg.get("space", {}),
                            *cfg.get("grid", {})] if c in df.columns]  # fmt: skip
    axes = [a for a in axes_all if a not in SEED_AXES and not (a in cfg.get("space", {}) and "sample" in axes_all)]
    n_ok = int((df["status"] == "ok").sum())
    intro = (f"<p>{len(df)} trials: {n_ok} finished, {len(df) - n_ok} failed. Swept: "
             f"{', '.join(_esc(a) for a in axes_all) or 'nothing'}. Directory: <code>{_esc(root)}</code>.</p>")
    sections = [_section("sweep", intro, _details("the sweep configuration", cfg) if cfg else "")]
    metrics = [m for m in ("accuracy", "eval_loss", "lyapunov_max") if m in df.columns and df[m].notna().any()]
    seeds = [a for a in axes_all if a in SEED_AXES]
    sections.append(_section(
        "accuracy table", f"<p>Held-out scores at the end of training, mean ± std over "
        f"{'the ' + ', '.join(seeds) + 's' if seeds else 'the trials'} of each setting.</p>",
        table_html(accuracy_rows(df, axes, metrics))))  # fmt: skip
    fig = seed_band_figure(root, df, axes)
    if fig is not None:
        sections.append(_section("learning curves", figure_html(
            fig, "learning curves with seed bands", "training loss per step: mean (line) ± std (band) over seeds")))
    numeric = [a for a in axes if a != "sample" and df[a].map(lambda v: isinstance(v, (int, float))
                                                              and not isinstance(v, bool)).all()
               and df[a].nunique() > 1]  # fmt: skip
    for axis in numeric:
        for metric in [m for m in ("accuracy", "eval_loss") if m in metrics]:
            sections.append(_section(f"{metric} against {axis}", figure_html(
                metric_vs_axis_figure(df, axis, axes, metric), f"{metric} against {axis}")))
    if "lyapunov_max" in metrics:
        spectra = {}
        for setting, g in _grouped(df[df["status"] == "ok"], axes)[:MAX_CURVES]:
            runs = [_read_json(root / r / "lyapunov.json") for r in g["run_dir"]]
            runs = [r["exponents"] for r in runs if r]
            if runs:
                n = min(len(r) for r in runs)
                spectra[_setting_label(setting, axes)] = [sum(r[i] for r in runs) / len(runs) for i in range(n)]
        if spectra:
            sections.append(_section("Lyapunov spectra", figure_html(
                lyapunov_figure(spectra, "1/step"), "Lyapunov spectra", "mean spectrum over seeds per setting")))
    failed = df[df["status"] != "ok"]
    sections.append(_section("failed trials", table_html(
        failed[["trial", *axes_all, "error"]].to_dict("records"), failed_col="error")))
    if "accuracy" in metrics and n_ok:
        best = df[df["status"] == "ok"].sort_values("accuracy", ascending=False, kind="stable").iloc[0]
        trained = load_trained(root / best["run_dir"])
        if trained is not None:
            title = f"best trial {best['trial']} ({_setting_label(best, axes_all)}; accuracy {best['accuracy']:.3g})"
            seed = int(best["seed"]) if "seed" in best and best["seed"] is not None else 0
            sections.append(_section(title, *model_figures(*trained, seed=seed)))
    shown = [c for c in df.columns if c not in ("config",)]
    sections.append(_section("all trials", table_html(df[shown].to_dict("records"), failed_col="status")))
    return page(f"spikedyn sweep {cfg.get('name', root.name)}", sections)


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of a run or sweep directory to ``out`` (default ``<path>/report.html``; an existing
    directory ``out``: ``<out>/report.html``). Returns the file written."""
    from .sweeps import is_sweep_dir

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory; pass a run directory or a sweep directory")
    target = path if out is None else Path(out)
    if target.is_dir():  # the run/sweep directory itself, or an existing directory given as --out
        target = target / REPORT_FILE
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a directory, not a page; give --out another file name")
    if is_sweep_dir(path):
        text = sweep_report(path)
    elif is_run_dir(path):
        text = run_report(path)
    else:
        raise ValueError(f"{path} is neither a run directory (a spikedyn train config.json) nor a sweep "
                         "(sweep.parquet); pass the --run-dir of `spikedyn train` or the out_dir of `spikedyn sweep`")
    atomic_write_bytes(target, text.encode("utf-8"))
    return target
