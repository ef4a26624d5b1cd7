"""``spikedyn circuit hd-robustness``: the head-direction realisations under every perturbation class."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import comma_list, device_option, emit, json_option, out_option
from .groups import circuit_app


@circuit_app.command("hd-robustness")
def hd_robustness(
    duration: float = typer.Option(10.0, help="Seconds per run (darkness and OU velocity)."),
    realisations: int = typer.Option(20, help="Frozen perturbation realisations per level."),
    classes: str = typer.Option("weight,latency,mismatch,tau,bias", help="Perturbation classes (comma-separated)."),
    models: str = typer.Option("digital,digital_tau,intrinsic,ring", help="Realisations (comma-separated)."),
    out: Path = out_option("circuit_hd_robustness", "results/hd_robustness.{json,md} and figures/"),
    seed: int = typer.Option(0, help="Seed."),
    device: str = device_option(),
    as_json: bool = json_option(),
) -> None:
    """Drift in darkness and path-integration error of the digital circuit, its finite-time-constant-relay
    variant, the intrinsically-oscillating realisation (Park et al. Fig. 6A) and the ring attractor, against
    weight noise, per-axon latency perturbations, a +- period mismatch, time-constant and bias
    heterogeneity (frozen, `--realisations` per level; medians with 95% bootstrap CIs and detection
    floors)."""
    from ..experiments import hd_robustness as Rb

    cfg = Rb.RobustnessConfig(duration=duration, realisations=realisations,
                              classes=comma_list(classes, "--classes"), models=comma_list(models, "--models"),
                              seed=seed)
    res = Rb.run(cfg, device=device, log=lambda s: typer.echo(s, err=True))
    paths = Rb.write(res, Path(out))
    drifting: dict[str, list[str]] = {}
    for r in res["rows"]:
        if not r["below_floor"]:
            drifting.setdefault(f"{r['model']}: {r['class']}", []).append(f"{r['level']:g}")
    emit({"tables": str(paths["md"]), "figure": str(paths["figure"]), "json": str(paths["json"]),
          **{k: "drifts at " + ", ".join(v) for k, v in sorted(drifting.items())}, "seconds": res["seconds"]},
         as_json, "spikedyn circuit hd-robustness")
