"""Experiments: each reproduction, study and benchmark as code, above the library and below the CLI.

Every experiment module has a config (a pydantic model, strict types), ``run(cfg, out, device=...)`` and
``plot(results, path)``; the CLI commands only parse options and call them. Outputs go under the given
out directory (the CLI's default is under ``runs/``); ``--out docs/...`` is how the docs are regenerated.

- ``build``: tasks and models from names, with per-task defaults (shared).
- ``demo``: a rate net and its spiking twin on RDM (``spikedyn demo``).
- ``foundation``: accuracy table and the mirror figure (``spikedyn bench accuracy``, ``bench mirror``).
- ``eprop_memory``, ``eprop_accuracy``, ``eprop_gain``: e-prop (Bellec et al. 2020) memory and time vs
  BPTT, held-out accuracy, and the initial-gain sweep of Liu et al. (Fig. 1) (``spikedyn bench eprop-*``).
- ``flossing``: local gradient flossing before e-prop on Romo, Liu et al. Fig. 4
  (``spikedyn analyze flossing-romo``).
- ``long_memory``: PTA vs standard initialisations on long-memory tasks, Park et al. Table S1
  (``spikedyn bench memory``).
- ``fig3``: reference systems' activity, adjoints and spectra (Park et al. Fig. 3) and the PTA region maps
  (Fig. 5A-B) (``spikedyn analyze fig3``, ``analyze pta-map``).
- ``head_direction`` (with ``hd_measure``, ``hd_figures``): the delay-line head-direction circuit beside a
  ring attractor, Park et al. Sec. 2.11 (``spikedyn circuit hd``).
- ``deploy_compare``: torch vs Lava table of a trained run (``spikedyn deploy``).
- ``pulse``: transient vs stable integrators by an input pulse, McMahan et al. 2024 Fig. 4
  (``pulse_experiment(model)``; ``python -m spikedyn.experiments.pulse``).
"""
