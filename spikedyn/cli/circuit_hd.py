"""``spikedyn circuit hd``: the delay-line head-direction circuit beside a ring attractor (Park et al.)."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from .common import comma_list, device_option, emit, json_option, out_option
from .groups import circuit_app


@circuit_app.command("hd")
def hd(
    duration: float = typer.Option(60.0, help="Seconds per run (path integration and darkness)."),
    realisations: int = typer.Option(20, help="Weight-noise realisations per sigma."),
    sigmas: str = typer.Option("0,0.01,0.05,0.1,0.2", help="Weight-noise levels sigma (comma-separated)."),
    diffusion_duration: float = typer.Option(20.0, help="Seconds per S-type-noise run."),
    diffusion_realisations: int = typer.Option(40, help="Noise realisations per S-type-noise level."),
    jitters: str = typer.Option("0.001,0.01,0.05", help="Conduction-jitter probabilities (S-type)."),
    input_noises: str = typer.Option("0.01,0.03", help="Input-current noise std (S-type)."),
    period: float = typer.Option(10.0, help="Oscillation period (ms)."),
    dt: float = typer.Option(0.125, help="Simulation step of the circuit (ms)."),
    lava: bool = typer.Option(True, help="Compare Lava with torch (skipped, with a note, without Lava)."),
    lava_seconds: float = typer.Option(2.0, help="Simulated seconds for the Lava comparison."),
    quick: bool = typer.Option(False, help="Small settings (5 s runs, 4 realisations) for a quick look."),
    out: Path = out_option("circuit_hd", "figures/hd_*.png and results/hd.{json,md}"),
    seed: int = typer.Option(0, help="Seed."),
    device: str = device_option("auto"),
    as_json: bool = json_option(),
) -> None:
    """Measure the delay-line oscillator circuit (Park et al., Sec. 2.11) beside a calibrated ring attractor:
    path integration, drift in darkness, weight-noise robustness, S-type phase diffusion, Lava parity;
    write the figures and tables of docs/circuits.md (a full run takes tens of minutes on 2 CPU cores;
    --device auto uses CUDA when there is one)."""
    from ..experiments import head_direction as X

    options = dict(sigmas=comma_list(sigmas, "--sigmas", float, 0.0), jitters=comma_list(jitters, "--jitters", float,
                   0.0), input_noises=comma_list(input_noises, "--input-noises", float, 0.0), period=period, dt=dt,
                   lava=lava, seed=seed)  # fmt: skip
    if quick:
        cfg = X.HDStudyConfig.quick(**options)
    else:
        cfg = X.HDStudyConfig(duration=duration, realisations=realisations, diffusion_duration=diffusion_duration,
                              diffusion_realisations=diffusion_realisations, lava_seconds=lava_seconds, **options)
    t0 = time.perf_counter()
    res = X.run(cfg, device=device, log=lambda s: typer.echo(s, err=True))
    figures = X.plot(res, out)
    tables = X.write(res, out)
    summary = {**X.summary(res), "figures": ", ".join(str(f) for f in figures), "tables": str(tables),
               "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    emit(summary, as_json, "spikedyn circuit hd: delay-line oscillators vs ring attractor")
