"""``spikedyn study rules|contexts|noise|bodies``: McMahan et al. 2024's population studies (and one across
bodies): train many networks, compare their representations (SVCCA) and attractor topologies."""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from . import app
from .common import comma_list, cpu_threads, emit, json_option, threads_option

study_app = typer.Typer(
    no_args_is_help=True,
    help="Population studies after McMahan et al. 2024: many networks per learning rule (or body); SVCCA and "
    "attractor-topology distance matrices, MDS plots and silhouette scores under the --out directory. "
    "Resumable: finished networks are read back, not retrained.",
)
app.add_typer(study_app, name="study")


# Options every study command shares, defined once (their defaults stay in each signature).
Contexts = Annotated[int, typer.Option(help="Contexts of --task ncdi (2..6).")]
Seed = Annotated[int, typer.Option(help="Seeds initialisations, batches and analyses.")]
TargetAccuracy = Annotated[float, typer.Option(help="Train each network until this held-out accuracy.")]
EvalTrials = Annotated[int, typer.Option(help="Held-out trials of the accuracy check (McMahan et al.: 2,000).")]
AnalysisTrials = Annotated[int, typer.Option(help="Held-out trials whose activity SVCCA compares.")]
NInits = Annotated[int, typer.Option(help="Initial states per probe input of the fixed-point search "
                                     "(McMahan et al.'s code: 100).")]
SignatureProbes = Annotated[int, typer.Option(min=1, max=21, help="Small inputs of the topology signature: the "
                                              "first K of McMahan et al.'s 21 (|u| <= 0.03, smallest first).")]
Steps = Annotated[list[str], typer.Option(help="Step budget of a rule the command trains, rule=N (repeatable), "
                                          "e.g. hebbian=5000; a study resumes only with the budgets it started with.")]
IncludeFailed = Annotated[bool, typer.Option(help="Analyse networks that missed the target accuracy too.")]
_THREADS_WHY = "many small networks and SVDs gain nothing from more"
Progress = Annotated[bool, typer.Option(help="Progress on stderr.")]
DtMs = Annotated[float, typer.Option(help="Integration step in ms of the task and every network (default: the "
                                     "preset's 10 ms; it must divide the 750 ms trial). Rate nets: alpha = "
                                     "dt / tau; the input noise keeps its variance per 1 ms. McMahan et al.'s "
                                     "code: 1 (their trials: 750 samples; this task's: 751 steps, t = 0..750 ms).")]

TauMs = Annotated[float, typer.Option(help="Rate networks' time constant in ms (default: the preset's 100 ms), "
                                      "alpha = min(1, dt / tau) at the --dt-ms step. McMahan et al.'s code has "
                                      "tau = 10 ms at 1 ms steps (alpha 0.1): --tau-ms 10 --dt-ms 1; tau at or "
                                      "below the step gives alpha = 1 (no leak; warned).")]


def _steps(values: list[str]) -> dict[str, int]:
    from ..config import parse_key_values

    out = {}
    for k, v in parse_key_values(values, "--steps").items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"--steps {k}=... must be a positive integer of steps, got {v!r}")
        out[k] = v
    return out


def _config(**kw: Any) -> Any:
    from ..experiments.study import StudyConfig

    return StudyConfig(**kw).check()


def _one_line_warnings(command: Callable[..., None]) -> Callable[..., None]:
    """Run ``command`` with each distinct warning shown once, as one ``spikedyn: warning:`` line on stderr."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        seen: set[str] = set()

        def show(message: Any, *_: Any, **__: Any) -> None:
            if str(message) not in seen:
                seen.add(str(message))
                typer.echo(f"spikedyn: warning: {message}", err=True)

        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = show
            command(*args, **kwargs)

    return wrapper


def _report(summary: dict[str, Any], as_json: bool, title: str, out: Path) -> None:
    short: dict[str, Any] = {"out": str(out)}
    if "trend" in summary:  # study contexts: one sub-study per N, each with its own network counts
        short.update({k: v for k, v in summary["trend"].items()})
    else:
        nets = summary.get("nets", [])
        short.update({"networks": len(nets), "reached_target": sum(bool(n["reached"]) for n in nets),
                      "analysed": sum(bool(n["analysed"]) for n in nets)})  # fmt: skip
        for key in ("svcca", "topology", "svcca_trials", "topology_graph"):
            sc = summary.get("scores", {}).get(key, {})
            short[f"{key}_silhouette"] = sc.get("silhouette")
            short[f"{key}_silhouette_rows"] = sc.get("silhouette_rows")
        for key in ("svcca", "topology"):
            for lab, v in summary.get("scores", {}).get(key, {}).get("silhouette_by_label", {}).items():
                short[f"{key}_silhouette[{lab}]"] = v
        for key, v in (summary.get("hebbian_vs_rest") or {}).items():
            short[f"{key}_silhouette[hebbian vs rest]"] = v
        for twin, d in (summary.get("twins") or {}).items():
            for key, v in d.items():
                if v:
                    short[f"{twin} {key}: own parent / other parents"] = (
                        f"{v['own_parent']:.3f} / {v['other_parents']:.3f} (closer to own: {v['closer_to_own']:.0%})")
    if summary.get("figure"):
        short["figure"] = str(Path(out) / summary["figure"])  # study.json records it relative to --out
    emit(short, as_json, title)


_RULES_HELP = "Comma-separated rules: bptt, ga, hebbian, full_force, eprop."


@study_app.command("rules")
@_one_line_warnings
def study_rules(
    task: str = typer.Option("rdm", help="rdm | cdi | ncdi (McMahan et al. 2024's tasks, 750 ms trials)."),
    contexts: Contexts = None,
    rules: str = typer.Option("bptt,ga,hebbian,full_force", help=_RULES_HELP),
    nets: int = typer.Option(10, help="Networks per rule (and body); McMahan et al. trained 50."),
    bodies: str = typer.Option("rate", help="Comma-separated bodies: rate (McMahan et al.'s CTRNN), lif."),
    noise_var: float = typer.Option(1.0, help="Input-noise variance (at 1 ms; the paper's 1.0)."),
    tau_ms: TauMs = None,
    dt_ms: DtMs = None,
    seed: Seed = 0,
    target_accuracy: TargetAccuracy = 0.9,
    eval_trials: EvalTrials = 500,
    analysis_trials: AnalysisTrials = 50,
    n_inits: NInits = 100,
    signature_probes: SignatureProbes = 21,
    steps: Steps = None,
    include_failed: IncludeFailed = False,
    out: Path = typer.Option(None, "--out", help="Study directory (default runs/study/rules-TASK)."),
    threads: int = threads_option(_THREADS_WHY),
    progress: Progress = True,
    as_json: bool = json_option(),
) -> None:
    """McMahan et al. 2024 Fig. 1: NETS networks per rule; SVCCA and topology distances, MDS, silhouettes."""
    from ..experiments import study as X

    cfg = _config(task=task, n_contexts=contexts, rules=comma_list(rules, "--rules"), nets=nets,
                  bodies=comma_list(bodies, "--bodies"), noise_var=noise_var, seed=seed, tau_ms=tau_ms, dt_ms=dt_ms,
                  target_accuracy=target_accuracy, eval_trials=eval_trials, analysis_trials=analysis_trials,
                  n_inits=n_inits, signature_probes=signature_probes, steps=_steps(steps or []),
                  include_failed=include_failed)  # fmt: skip
    out = out or Path("runs") / "study" / f"rules-{task}{contexts or ''}"
    with cpu_threads(threads):  # torch's and BLAS's; the caller's counts come back afterwards
        summary = X.run_rules(cfg, out, progress=progress and not as_json)
    _report(summary, as_json, f"study rules on {task}", out)


@study_app.command("contexts")
@_one_line_warnings
def study_contexts(
    contexts: str = typer.Option("2,3,4,5,6", help="Numbers of N-CDI contexts (2..6)."),
    rules: str = typer.Option("bptt,ga", help=_RULES_HELP),
    nets: int = typer.Option(10, help="Networks per rule and N."),
    seed: Seed = 0,
    target_accuracy: TargetAccuracy = 0.9,
    eval_trials: EvalTrials = 500,
    analysis_trials: AnalysisTrials = 50,
    n_inits: NInits = 100,
    signature_probes: SignatureProbes = 21,
    dt_ms: DtMs = None,
    steps: Steps = None,
    include_failed: IncludeFailed = False,
    out: Path = typer.Option(Path("runs") / "study" / "contexts", "--out", help="Study directory."),
    threads: int = threads_option(_THREADS_WHY),
    progress: Progress = True,
    as_json: bool = json_option(),
) -> None:
    """McMahan et al. 2024 Fig. 2: the rules study on N-CDI for each N; silhouettes against N."""
    from ..experiments import study as X

    ns = comma_list(contexts, "--contexts", int, minimum=2)
    cfg = _config(task="ncdi", n_contexts=ns[0], rules=comma_list(rules, "--rules"), nets=nets, seed=seed, dt_ms=dt_ms,
                  target_accuracy=target_accuracy, eval_trials=eval_trials, analysis_trials=analysis_trials,
                  n_inits=n_inits, signature_probes=signature_probes, steps=_steps(steps or []),
                  include_failed=include_failed)  # fmt: skip
    with cpu_threads(threads):  # torch's and BLAS's; the caller's counts come back afterwards
        summary = X.run_contexts(cfg, out, contexts=ns, progress=progress and not as_json)
    _report(summary, as_json, "study contexts (N-CDI)", out)


@study_app.command("noise")
@_one_line_warnings
def study_noise(
    task: str = typer.Option("rdm", help="rdm | cdi | ncdi."),
    contexts: Contexts = None,
    levels: str = typer.Option("0.1,0.5,1.0", help="Input-noise variances (McMahan et al.: 0.1, 0.5, 1.0)."),
    nets: int = typer.Option(10, help="BPTT networks per noise level."),
    seed: Seed = 0,
    target_accuracy: TargetAccuracy = 0.9,
    eval_trials: EvalTrials = 500,
    analysis_trials: int = typer.Option(50, help="Held-out trials (at noise 1.0) whose activity SVCCA compares."),
    n_inits: NInits = 100,
    signature_probes: SignatureProbes = 21,
    tau_ms: TauMs = None,
    dt_ms: DtMs = None,
    steps: Steps = None,
    include_failed: IncludeFailed = False,
    out: Path = typer.Option(None, "--out", help="Study directory (default runs/study/noise-TASK)."),
    threads: int = threads_option(_THREADS_WHY),
    progress: Progress = True,
    as_json: bool = json_option(),
) -> None:
    """McMahan et al. 2024 Fig. 5: BPTT networks at each input-noise variance, labelled by the noise."""
    from ..experiments import study as X

    vs = comma_list(levels, "--levels", float, minimum=0.0)
    cfg = _config(task=task, n_contexts=contexts, rules=("bptt",), nets=nets, seed=seed, tau_ms=tau_ms, dt_ms=dt_ms,
                  target_accuracy=target_accuracy, eval_trials=eval_trials, analysis_trials=analysis_trials,
                  n_inits=n_inits, signature_probes=signature_probes, steps=_steps(steps or []),
                  include_failed=include_failed)  # fmt: skip
    out = out or Path("runs") / "study" / f"noise-{task}{contexts or ''}"
    with cpu_threads(threads):  # torch's and BLAS's; the caller's counts come back afterwards
        summary = X.run_noise(cfg, out, levels=vs, progress=progress and not as_json)
    _report(summary, as_json, f"study noise on {task}", out)


@study_app.command("bodies")
@_one_line_warnings
def study_bodies(
    task: str = typer.Option("rdm", help="rdm | cdi | ncdi."),
    contexts: Contexts = None,
    nets: int = typer.Option(10, help="Rate parents (and networks per body)."),
    seed: Seed = 0,
    target_accuracy: TargetAccuracy = 0.9,
    eval_trials: EvalTrials = 500,
    analysis_trials: AnalysisTrials = 50,
    n_inits: NInits = 100,
    signature_probes: SignatureProbes = 21,
    dt_ms: DtMs = None,
    steps: Steps = None,
    include_failed: IncludeFailed = False,
    out: Path = typer.Option(None, "--out", help="Study directory (default runs/study/bodies-TASK)."),
    threads: int = threads_option(_THREADS_WHY),
    progress: Progress = True,
    as_json: bool = json_option(),
) -> None:
    """Beyond the paper: rate parents (BPTT), their mirror and full-FORCE spiking twins, and LIF networks
    trained with BPTT and e-prop. Do twins share their parents' attractor topology while representations
    differ? Silhouettes by body, and each twin's distance to its own parent vs the other parents."""
    from ..experiments import study as X

    cfg = _config(task=task, n_contexts=contexts, rules=X.BODY_RULES, bodies=("rate", "lif"),
                  nets=nets, seed=seed, target_accuracy=target_accuracy, eval_trials=eval_trials,
                  analysis_trials=analysis_trials, n_inits=n_inits, signature_probes=signature_probes, dt_ms=dt_ms,
                  steps=_steps(steps or []),
                  include_failed=include_failed)  # fmt: skip
    out = out or Path("runs") / "study" / f"bodies-{task}{contexts or ''}"
    with cpu_threads(threads):  # torch's and BLAS's; the caller's counts come back afterwards
        summary = X.run_bodies(cfg, out, progress=progress and not as_json)
    _report(summary, as_json, f"study bodies on {task}", out)
