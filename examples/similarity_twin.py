"""Representational similarity of trained RDM nets, their spiking twins and an untrained net
(docs/analysis.md, "Representational similarity"): SVCCA, linear CKA and the Procrustes shape distance on
the same held-out trials, and the zero-input attractor counts.

    .venv/bin/python examples/similarity_twin.py        # ~2 min on a shared 2-core CPU

Networks: McMahan et al. 2024's body (``mcmahan2024`` preset: N = 50, 1 + tanh units), trained with
BPTT for at most 300 steps (stopping at 90% held-out accuracy), seeds 0
and 1; the ``mirror`` twin of each (integrate-and-fire, 10 substeps; 1 + tanh is approximated by
2 clip(x/2 + 1/2, 0, 1); activity = the readout's r-bar);
one untrained net.
"""
from __future__ import annotations

import numpy as np
import torch

import spikedyn
from spikedyn.analysis import activity, cka, fixed_points, shape_distance, svcca
from spikedyn.analysis.similarity import canonical_correlations
from spikedyn.learning import presets

torch.set_num_threads(1)
preset = presets.get("mcmahan2024")
task = preset.task("rdm")
held_out = task.sample(200, np.random.default_rng(123))  # the same trials for every network

nets = {}
for seed in (0, 1):
    net = preset.build_model(task, seed=seed)
    res = spikedyn.train(net, task, steps=300, batch_size=64, lr=5e-3, seed=seed, eval_every=25, eval_trials=500,
                         target_accuracy=0.9, progress=False)
    nets[f"rate s{seed} ({res.final['accuracy']:.2f})"] = net
    twin = spikedyn.mirror(net, inputs=torch.as_tensor(held_out.inputs, dtype=torch.float32), substeps=10)
    nets[f"twin s{seed}"] = twin
nets["untrained"] = preset.build_model(task, seed=7)

acts = {name: activity(m, held_out) for name, m in nets.items()}
names = list(acts)
print("pair | SVCCA | SVCCA same K | CKA | shape (rad) | K_a, K_b (PCs for 95%)")
for i, a in enumerate(names):
    for b in names[i + 1:]:
        A, B = acts[a], acts[b]
        ka, kb = (len(canonical_correlations(X, X)) for X in (A, B))
        print(f"{a} vs {b} | {svcca(A, B):.3f} | {svcca(A, B, same_k=True):.3f} | {cka(A, B):.3f} | "
              f"{shape_distance(A, B):.3f} | {ka}, {kb}")
for name, m in nets.items():
    fp = fixed_points(m, [0.0], n_inits=128, inputs=held_out, progress=False)
    print(f"{name}: {fp.n_stable} attractor(s) at zero input, {len(fp)} fixed point(s)")
