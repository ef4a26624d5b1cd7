"""Tests of spikedyn.tasks (numpy only): shapes, seeding, scoring, task statistics, NeuroGym agreement."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spikedyn.tasks as T
from spikedyn.tasks.head_direction import constant_velocity, darkness, ou_velocity
from spikedyn.tasks.sequential import read_idx

B = 8
# gymnasium warns that NeuroGym's env metadata has no render_modes; irrelevant here
pytestmark = pytest.mark.filterwarnings("ignore:.*render_modes:UserWarning")


# ---------------------------------------------------------------------------------------------- helpers
def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array as an IDX file (the MNIST format)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def make_mnist(folder: Path, n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, array) in enumerate(arrays.items()):
        compress = i % 2 == 1  # mix plain and .gz files
        write_idx(folder / (name + (".gz" if compress else "")), array, compress)
    return arrays


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mnist")
    make_mnist(folder)
    return folder


def build(name: str, mnist_dir: Path) -> T.Task:
    return T.make(name, data_dir=str(mnist_dir)) if name == "psmnist" else T.make(name)


def perfect(task: T.Task, batch: T.TaskBatch) -> np.ndarray:
    return batch.targets * (10.0 if task.loss == "ce" else 1.0)


def wrong(task: T.Task, batch: T.TaskBatch) -> np.ndarray:
    if task.loss == "ce":  # the target's logit moves to the next class: wrong class at every step
        return np.roll(batch.targets, 1, axis=-1) * 10.0
    return -batch.targets  # sign flipped (rdm/cdi) or heading rotated by pi (head_direction)


# ------------------------------------------------------------------------------------ every task alike
def test_registry_lists_tasks_and_rejects_unknown_names() -> None:
    expected = {"romo", "2af", "dms", "rdm", "cdi", "ncdi", "copy_memory", "temporal_order",
                "random_delay_copy", "psmnist", "psdigits", "head_direction"}
    assert set(T.available()) == expected
    with pytest.raises(ValueError, match="available: .*rdm"):
        T.make("nope")
    with pytest.raises(ValueError, match="no parameter"):
        T.make("rdm", bogus=1)


@pytest.mark.parametrize("name", sorted(T.available()))
def test_task_contract(name: str, mnist_dir: Path) -> None:
    task = build(name, mnist_dir)
    batch = task.sample(B, rng=0)
    n_steps = batch.inputs.shape[0]
    assert batch.inputs.shape == (n_steps, B, task.n_inputs)
    assert batch.targets.shape == batch.mask.shape == (n_steps, B, task.n_outputs)
    for array in (batch.inputs, batch.targets, batch.mask):
        assert array.dtype == np.float32
    assert set(np.unique(batch.mask)) <= {0.0, 1.0} and batch.mask.sum() > 0
    assert task.loss in ("mse", "ce") and task.dt > 0 and task.name == name
    assert all(len(v) == B for v in batch.meta.values())
    if task.loss == "ce":
        np.testing.assert_array_equal(batch.targets.sum(-1), 1.0)
        np.testing.assert_array_equal(batch.mask, np.repeat(batch.mask[..., :1], task.n_outputs, -1))

    again = task.sample(B, rng=np.random.default_rng(0))
    other = task.sample(B, rng=1)
    for field in ("inputs", "targets", "mask"):
        np.testing.assert_array_equal(getattr(batch, field), getattr(again, field))
    assert not np.array_equal(batch.inputs, other.inputs)
    rebuilt = T.make(**task.config()).sample(B, rng=0)
    np.testing.assert_array_equal(rebuilt.inputs, batch.inputs)

    assert task.score(perfect(task, batch), batch)["accuracy"] == 1.0
    assert task.score(wrong(task, batch), batch)["accuracy"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        task.score(batch.targets[:-1], batch)


@pytest.mark.parametrize(("name", "params"), [
    ("ncdi", {"n_contexts": 1}), ("ncdi", {"n_contexts": 7}), ("ncdi", {"n_contexts": 2.5}),
    ("rdm", {"dt": 7.0}), ("rdm", {"dt": 0.0}), ("rdm", {"response_ms": 750.0}),
    ("rdm", {"response_ms": 5.5, "dt": 1.0}), ("cdi", {"noise_var": -1.0}),
    ("romo", {"dt": 30}), ("romo", {"timing": {"foo": 100}}), ("romo", {"vpairs": [(10, 18)]}),
    ("romo", {"timing": {"decision": 0}}), ("romo", {"sigma": -1.0}), ("dms", {"mask": "bogus"}),
    ("2af", {"dim_ring": 1}), ("2af", {"cohs": []}), ("dms", {"timing": {"delay": "long"}}),
    ("copy_memory", {"delay": -1}), ("copy_memory", {"mask": "recall_only"}),
    ("random_delay_copy", {"delay_min": 10, "delay_max": 5}),
    ("temporal_order", {"t1_max": 55}), ("temporal_order", {"length_min": 50}),
    ("psdigits", {"test_fraction": 1.5}), ("psmnist", {"perm_seed": -1}),
    ("head_direction", {"velocity": "spin"}), ("head_direction", {"dt": 3.0}),
    ("head_direction", {"cue_ms": 2000.0}),
])
def test_bad_parameters_raise_value_error(name: str, params: dict) -> None:
    with pytest.raises(ValueError):
        T.make(name, **params)


def test_bad_sample_arguments_raise() -> None:
    task = T.make("rdm", dt=10.0)
    with pytest.raises(ValueError, match="split"):
        task.sample(4, rng=0, split="val")
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(0, rng=0)
    with pytest.raises(TypeError, match="rng"):
        task.sample(4, rng="seed")


def test_tasks_never_import_torch(tmp_path: Path) -> None:
    code = ("import sys, importlib, pkgutil, spikedyn.tasks as T\n"
            "for m in pkgutil.iter_modules(T.__path__): importlib.import_module('spikedyn.tasks.' + m.name)\n"
            "for n in T.available():\n"
            "    if n != 'psmnist': T.make(n).sample(2, rng=0)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------------- rdm / cdi / ncdi
def test_rdm_timing_targets_and_mask() -> None:
    task = T.make("rdm")
    batch = task.sample(16, rng=0)
    assert batch.inputs.shape == (751, 16, 1) and task.dt == 1.0  # t = 0..750 ms inclusive
    mask = batch.mask[..., 0]
    np.testing.assert_array_equal(np.flatnonzero(mask.any(axis=1)), [0, 750])
    np.testing.assert_array_equal(batch.targets[0, :, 0], 0.0)
    np.testing.assert_array_equal(batch.targets[-1, :, 0], np.sign(batch.meta["coherence"]))
    np.testing.assert_array_equal(batch.meta["choice"], batch.targets[-1, :, 0])

    wide = T.make("rdm", dt=10.0, response_ms=100.0).sample(4, rng=0)
    assert wide.inputs.shape[0] == 76
    np.testing.assert_array_equal(np.flatnonzero(wide.mask[:, 0, 0]), [0, *range(65, 76)])


@pytest.mark.parametrize("dt", [1.0, 10.0])
def test_rdm_coherence_range_and_noise_variance(dt: float) -> None:
    batch = T.make("rdm", dt=dt).sample(400, rng=3)
    mu = batch.meta["coherence"]
    assert np.all(np.abs(mu) <= 0.1857) and mu.min() < -0.17 and mu.max() > 0.17
    residual = batch.inputs[..., 0] - mu[None, :]
    expected = 1.0 / dt  # noise_var = 1 at dt = 1 ms, std scaled by sqrt(1 ms / dt)
    assert abs(residual.var() / expected - 1.0) < 0.03
    assert abs(residual.mean(axis=0)).max() < 6 * np.sqrt(expected / residual.shape[0])


def test_rdm_evidence_per_unit_time_is_dt_invariant() -> None:
    sums = []
    for dt in (1.0, 10.0):
        batch = T.make("rdm", dt=dt).sample(2000, rng=4)
        noise = batch.inputs[..., 0] - batch.meta["coherence"][None, :]
        sums.append((noise * dt).sum(axis=0) / 1000.0)  # integral of the noise over the trial (s)
    variances = [s.var() for s in sums]
    assert abs(variances[0] / variances[1] - 1.0) < 0.15


def test_rdm_score_uses_sign_of_final_window() -> None:
    task = T.make("rdm", dt=10.0, response_ms=20.0)
    batch = task.sample(6, rng=0)
    out = np.zeros_like(batch.targets)
    out[-3:, :, 0] = 0.01 * batch.meta["choice"]
    out[-1, :3, 0] = -0.1 * batch.meta["choice"][:3]  # the window mean flips for the first three trials
    scores = task.score(out, batch)
    assert scores["accuracy"] == 0.5
    expected_mse = ((out - batch.targets) ** 2 * batch.mask).sum() / batch.mask.sum()
    assert scores["mse"] == pytest.approx(expected_mse)


@pytest.mark.parametrize(("name", "params", "n"), [("cdi", {}, 2), ("ncdi", {"n_contexts": 5}, 5)])
def test_context_integration_layout(name: str, params: dict, n: int) -> None:
    task = T.make(name, dt=5.0, **params)
    batch = task.sample(200, rng=0)
    assert task.n_inputs == 2 * n
    contexts, streams = batch.inputs[..., :n], batch.inputs[..., n:]
    np.testing.assert_array_equal(contexts, np.broadcast_to(contexts[:1], contexts.shape))
    np.testing.assert_array_equal(contexts[0].argmax(-1), batch.meta["context"])
    np.testing.assert_array_equal(contexts[0].sum(-1), 1.0)
    mus = batch.meta["coherences"]
    relevant = mus[np.arange(200), batch.meta["context"]]
    np.testing.assert_array_equal(batch.meta["coherence"], relevant)
    np.testing.assert_array_equal(batch.meta["choice"], np.sign(relevant))
    np.testing.assert_array_equal(batch.targets[-1, :, 0], np.sign(relevant))
    assert np.all(np.abs(mus) <= 0.1857)
    assert set(np.unique(batch.meta["context"])) == set(range(n))
    assert np.abs(streams.mean(axis=0) - mus).max() < 6 * np.sqrt(1 / 5.0 / streams.shape[0])


# --------------------------------------------------------------------------------- NeuroGym-style tasks
NEUROGYM_TWINS = {
    "2af": ("PerceptualDecisionMaking-v0",
            lambda m, b: {"ground_truth": int(m["choice"][b]) - 1, "coh": float(m["coherence"][b])}),
    "dms": ("DelayMatchSample-v0",
            lambda m, b: {"ground_truth": int(m["choice"][b]), "sample_theta": float(m["sample_theta"][b])}),
    "romo": ("DelayComparison-v0",
             lambda m, b: {"ground_truth": int(m["choice"][b]),
                           "vpair": (max(m["f1"][b], m["f2"][b]), min(m["f1"][b], m["f2"][b]))}),
}


@pytest.mark.parametrize("name", sorted(NEUROGYM_TWINS))
@pytest.mark.parametrize("dt", [100, 20])
def test_cognitive_tasks_match_neurogym_without_noise(name: str, dt: int) -> None:
    import neurogym as ngym
    env_id, condition = NEUROGYM_TWINS[name]
    env = ngym.make(env_id, dt=dt, sigma=0.0).unwrapped
    task = T.make(name, dt=dt, sigma=0.0)
    assert env.timing == task.timing  # NeuroGym's default timings are fixed numbers, as ours
    assert all(isinstance(v, int | float) for v in env.timing.values())
    assert task.n_inputs == env.observation_space.shape[0] and task.n_outputs == env.action_space.n
    batch = task.sample(24, rng=5)
    for b in range(24):
        env.new_trial(**condition(batch.meta, b))
        assert env.start_ind == task.start and env.end_ind == task.end
        np.testing.assert_allclose(batch.inputs[:, b], env.ob, atol=1e-6)
        np.testing.assert_array_equal(batch.targets[:, b].argmax(-1), env.gt)


@pytest.mark.parametrize("name", sorted(NEUROGYM_TWINS))
def test_cognitive_task_noise_matches_neurogym(name: str) -> None:
    import neurogym as ngym
    env_id, condition = NEUROGYM_TWINS[name]
    noisy_env = ngym.make(env_id, dt=20, sigma=1.5).unwrapped
    clean_env = ngym.make(env_id, dt=20, sigma=0.0).unwrapped
    noisy_env.seed(0)
    batch = T.make(name, dt=20, sigma=1.5).sample(64, rng=0)
    theirs, ours = [], []
    for b in range(64):
        cond = condition(batch.meta, b)
        noisy_env.new_trial(**cond)
        clean_env.new_trial(**cond)
        theirs.append(noisy_env.ob - clean_env.ob)
        ours.append(batch.inputs[:, b] - clean_env.ob)
    theirs, ours = np.stack(theirs, axis=1), np.stack(ours, axis=1)  # [T, B, I] noise only
    np.testing.assert_array_equal(theirs.std(axis=1) > 0, ours.std(axis=1) > 0)  # same noisy entries
    for noise in (theirs, ours):
        assert abs(noise[noise != 0].std() / (1.5 / np.sqrt(20)) - 1) < 0.05  # sigma / sqrt(dt in ms)


def test_cognitive_targets_masks_and_scores() -> None:
    task = T.make("dms", mask="decision")
    batch = task.sample(16, rng=0)
    dec = task.span("decision")
    assert batch.mask[dec].all() and batch.mask[: dec.start].sum() == 0
    np.testing.assert_array_equal(batch.targets[: dec.start, :, 0], 1.0)
    choices = np.broadcast_to(batch.meta["choice"], (9, 16))
    np.testing.assert_array_equal(batch.targets[dec].argmax(-1), choices)
    np.testing.assert_array_equal(T.make("dms").sample(16, rng=0).mask, 1.0)

    out = np.zeros_like(batch.targets)
    out[..., 0] = 1.0  # fixate throughout: fixation right, choices: ties -> action 1 (match)
    scores = task.score(out, batch)
    assert scores["fixation_accuracy"] == 1.0
    assert scores["accuracy"] == pytest.approx(np.mean(batch.meta["choice"] == 1))
    out = 10 * batch.targets
    out[: dec.start, :, 0] = 0.0
    out[: dec.start, :, 2] = 10.0  # right choices, but never fixates before the decision period
    assert task.score(out, batch) == {"accuracy": 1.0, "fixation_accuracy": 0.0}


def test_romo_and_2af_conditions() -> None:
    romo = T.make("romo").sample(500, rng=0)
    f1, f2, choice = romo.meta["f1"], romo.meta["f2"], romo.meta["choice"]
    np.testing.assert_array_equal(choice, np.where(f1 > f2, 1, 2))
    assert set(zip(np.maximum(f1, f2), np.minimum(f1, f2), strict=True)) == {
        (18, 10), (22, 14), (26, 18), (30, 22), (34, 26)}
    two = T.make("2af").sample(500, rng=0)
    assert set(two.meta["coherence"]) == {0, 6.4, 12.8, 25.6, 51.2}
    assert set(two.meta["choice"]) == {1, 2}


# ------------------------------------------------------------------------------------------ copy memory
def test_copy_memory_layout() -> None:
    k = 5
    task = T.make("copy_memory", delay=k)
    batch = task.sample(32, rng=0)
    assert batch.inputs.shape == (k + 20, 32, 10) and batch.targets.shape == (k + 20, 32, 9)
    symbols, targets = batch.inputs.argmax(-1), batch.targets.argmax(-1)
    tokens = batch.meta["tokens"].T  # [10, B]
    np.testing.assert_array_equal(batch.inputs.sum(-1), 1.0)
    np.testing.assert_array_equal(symbols[:10], tokens)
    assert tokens.max() <= 7 and len(np.unique(tokens)) == 8
    np.testing.assert_array_equal(symbols[10:10 + k], 8)  # k blanks
    np.testing.assert_array_equal(symbols[10 + k], 9)  # the start token
    np.testing.assert_array_equal(symbols[11 + k:], 8)  # 9 blanks
    assert symbols[11 + k:].shape[0] == 9
    np.testing.assert_array_equal(targets[: k + 10], 8)  # k + 10 blanks
    np.testing.assert_array_equal(targets[k + 10:], tokens)
    np.testing.assert_array_equal(np.flatnonzero(batch.mask[:, 0, 0]), np.arange(k + 10, k + 20))
    np.testing.assert_array_equal(T.make("copy_memory", delay=k, mask="all").sample(2, rng=0).mask, 1.0)


def test_copy_memory_cross_entropy_scores() -> None:
    task = T.make("copy_memory", delay=3)
    batch = task.sample(16, rng=0)
    uniform = task.score(np.zeros_like(batch.targets), batch)
    assert uniform["cross_entropy"] == pytest.approx(np.log(9))
    assert uniform["chance_cross_entropy"] == pytest.approx(np.log(8))
    out = np.zeros_like(batch.targets)
    out[..., :8] = np.log(1 / 8)  # uniform over the 8 tokens, ~zero mass on blank
    out[..., 8] = -50.0
    assert task.score(out, batch)["cross_entropy"] == pytest.approx(np.log(8))
    assert task.score(perfect(task, batch), batch)["cross_entropy"] < 1e-3


def test_random_delay_copy_padding_and_recall() -> None:
    task = T.make("random_delay_copy", mask="all")
    batch = task.sample(400, rng=0)
    T_max = 120 + 20
    assert batch.inputs.shape[0] == T_max
    delays, onset = batch.meta["delay"], batch.meta["onset"]
    assert delays.min() == 100 and delays.max() == 120 and len(np.unique(delays)) == 21
    np.testing.assert_array_equal(onset, T_max - (delays + 20))
    t = np.arange(T_max)[:, None]
    padding = t < onset[None, :]
    assert np.all(batch.inputs[padding] == 0) and np.all(batch.mask[padding] == 0)
    assert np.all(batch.mask[~padding] == 1) and np.all(batch.inputs[~padding].sum(-1) == 1)
    symbols = batch.inputs.argmax(-1)
    np.testing.assert_array_equal(symbols[T_max - 10], 9)  # every trial's start token, same step
    cols = np.arange(400)
    for j in range(10):
        np.testing.assert_array_equal(symbols[onset + j, cols], batch.meta["tokens"][:, j])
    np.testing.assert_array_equal(batch.targets[-10:].argmax(-1), batch.meta["tokens"].T)
    recall_mask = T.make("random_delay_copy").sample(4, rng=0).mask
    np.testing.assert_array_equal(np.flatnonzero(recall_mask[:, 0, 0]), np.arange(T_max - 10, T_max))


# ----------------------------------------------------------------------------------------- temporal order
def test_temporal_order_positions_and_labels() -> None:
    task = T.make("temporal_order")
    batch = task.sample(500, rng=0)
    m = batch.meta
    assert batch.inputs.shape == (110, 500, 8)
    assert m["length"].min() == 100 and m["length"].max() == 110
    assert m["t1"].min() == 10 and m["t1"].max() == 20 and m["t2"].min() == 50 and m["t2"].max() == 60
    np.testing.assert_array_equal(m["onset"], 110 - m["length"])
    t = np.arange(110)[:, None]
    padding = t < m["onset"][None, :]
    assert np.all(batch.inputs[padding] == 0) and np.all(batch.inputs[~padding].sum(-1) == 1)
    symbols = np.where(padding, -1, batch.inputs.argmax(-1))
    cols = np.arange(500)
    np.testing.assert_array_equal(symbols[m["onset"], cols], 6)  # E
    np.testing.assert_array_equal(symbols[-1], 7)  # B
    np.testing.assert_array_equal(symbols[m["onset"] + m["t1"], cols], 4 + m["first"])
    np.testing.assert_array_equal(symbols[m["onset"] + m["t2"], cols], 4 + m["second"])
    relevant = (symbols == 4) | (symbols == 5)
    assert np.all(relevant.sum(axis=0) == 2)
    other = ~padding & ~relevant & (symbols != 6) & (symbols != 7)
    assert set(np.unique(symbols[other])) == {0, 1, 2, 3}
    np.testing.assert_array_equal(m["label"], 2 * m["first"] + m["second"])  # XX, XY, YX, YY
    assert set(m["label"]) == {0, 1, 2, 3}
    np.testing.assert_array_equal(batch.targets[-1].argmax(-1), m["label"])
    np.testing.assert_array_equal(np.flatnonzero(batch.mask[:, 0, 0]), [109])


# ---------------------------------------------------------------------------------- psdigits / psmnist
def test_psdigits_splits_and_permutation() -> None:
    from sklearn.datasets import load_digits

    task = T.make("psdigits")
    test, train = task.dataset("test"), task.dataset("train")
    assert test.inputs.shape == (64, 359, 1) and train.inputs.shape == (64, 1438, 1)
    assert task.n_examples("test") == 359 and task.n_examples("train") == 1438
    assert test.inputs.min() >= 0 and test.inputs.max() == 1.0
    np.testing.assert_array_equal(np.flatnonzero(test.mask[:, 0, 0]), [63])
    plain = T.make("psdigits", perm_seed=None).dataset("test")
    perm = np.random.default_rng(0).permutation(64)
    np.testing.assert_array_equal(test.inputs, plain.inputs[perm])
    digits = load_digits()
    pool = {(img.tobytes(), lab) for img, lab in zip((digits.data / 16).astype(np.float32), digits.target,
                                                       strict=True)}
    rows = plain.inputs[..., 0].T
    test_set = {(x.tobytes(), lab) for x, lab in zip(rows, plain.meta["label"], strict=True)}
    assert test_set <= pool
    train_plain = T.make("psdigits", perm_seed=None).dataset("train")
    train_set = {x.tobytes() for x in train_plain.inputs[..., 0].T}
    assert len(train_set & {x for x, _ in test_set}) < 10  # disjoint up to duplicate images in the data
    drawn = task.sample(32, rng=0, split="test")
    test_rows = {x.tobytes() for x in test.inputs[..., 0].T}
    assert all(x.tobytes() in test_rows for x in drawn.inputs[..., 0].T)
    assert len(task.dataset("test", start=10, stop=20).meta["label"]) == 10


def test_idx_reader_roundtrip_and_errors(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", array)
    write_idx(tmp_path / "b-idx3-ubyte.gz", array, compress=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "b-idx3-ubyte.gz"), array)
    assert read_idx(tmp_path / "a-idx3-ubyte").dtype == np.uint8
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes((tmp_path / "a-idx3-ubyte").read_bytes()[:-1])
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short")


def test_psmnist_reads_idx_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = make_mnist(tmp_path / "MNIST" / "raw", n_train=5, n_test=3, seed=1)
    monkeypatch.setenv("SPIKEDYN_MNIST", str(tmp_path))  # torchvision layout under the env folder
    task = T.make("psmnist")
    test = task.dataset("test")
    assert test.inputs.shape == (784, 3, 1) and task.n_examples("train") == 5
    perm = np.random.default_rng(0).permutation(784)
    expected = arrays["t10k-images-idx3-ubyte"].reshape(3, 784)[:, perm].T / 255.0
    np.testing.assert_allclose(test.inputs[..., 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(test.meta["label"], arrays["t10k-labels-idx1-ubyte"])
    np.testing.assert_array_equal(test.targets[-1].argmax(-1), arrays["t10k-labels-idx1-ubyte"])
    train = task.sample(7, rng=0)
    assert set(train.meta["index"]) <= set(range(5))


def test_psmnist_missing_files_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPIKEDYN_MNIST", raising=False)
    with pytest.raises(FileNotFoundError, match="SPIKEDYN_MNIST") as err:
        T.make("psmnist").sample(2, rng=0)
    assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*t10k-labels-idx1-ubyte") as err:
        T.make("psmnist", data_dir=str(tmp_path)).dataset("test")
    assert "\n" not in str(err.value) and "data_dir" in str(err.value)


# ------------------------------------------------------------------------------------------ head direction
def test_velocity_generators() -> None:
    dt_ms, tau_s = 10.0, 0.08
    omega = ou_velocity(2000, dt_ms, 0, std_deg_s=120.0, tau_s=tau_s, batch=64)
    assert omega.shape == (2000, 64)
    assert abs(np.rad2deg(omega.std()) / 120.0 - 1) < 0.05
    lag1 = np.mean(omega[1:] * omega[:-1]) / np.mean(omega ** 2)
    assert lag1 == pytest.approx(np.exp(-dt_ms / 1000 / tau_s), abs=0.02)
    clipped = ou_velocity(500, dt_ms, 0, max_deg_s=30.0)
    assert clipped.shape == (500,) and np.abs(clipped).max() <= np.deg2rad(30.0) + 1e-12
    np.testing.assert_array_equal(ou_velocity(50, dt_ms, 7), ou_velocity(50, dt_ms, 7))
    const = constant_velocity(10, dt_ms, velocity_deg_s=90.0)
    np.testing.assert_allclose(const, np.pi / 2)
    drawn = constant_velocity(10, dt_ms, 0, max_deg_s=45.0, batch=100)
    assert np.all(drawn == drawn[0]) and np.abs(drawn).max() <= np.pi / 4
    np.testing.assert_array_equal(darkness(10, dt_ms, batch=3), np.zeros((10, 3)))
    with pytest.raises(ValueError):
        ou_velocity(10, 0.0, 0)


def test_head_direction_inputs_and_integration() -> None:
    task = T.make("head_direction", duration_ms=1000.0, dt=10.0, cue_ms=100.0)
    batch = task.sample(32, rng=0)
    omega = batch.meta["angular_velocity"].T  # [T, B] rad/s
    cw, ccw = batch.inputs[..., 0], batch.inputs[..., 1]
    assert cw.min() >= 0 and ccw.min() >= 0 and np.all(cw * ccw == 0)
    np.testing.assert_allclose(cw - ccw, omega, atol=1e-6)
    np.testing.assert_array_equal(omega[:10], 0.0)  # still during the cue
    theta0 = batch.meta["theta0"]
    np.testing.assert_allclose(batch.inputs[:10, :, 2], np.broadcast_to(np.cos(theta0), (10, 32)), atol=1e-6)
    np.testing.assert_array_equal(batch.inputs[10:, :, 2:], 0.0)
    heading = theta0 + np.cumsum(omega, axis=0) * 0.01
    np.testing.assert_allclose(batch.targets[..., 0], np.cos(heading), atol=1e-5)
    np.testing.assert_allclose(batch.targets[..., 1], np.sin(heading), atol=1e-5)

    dark = T.make("head_direction", velocity="darkness", cue_ms=0.0).sample(4, rng=0)
    assert dark.inputs.shape[-1] == 2 and np.all(dark.inputs == 0)
    np.testing.assert_allclose(dark.targets[..., 0], 1.0)


def test_head_direction_score_tolerance() -> None:
    task = T.make("head_direction", velocity="constant", duration_ms=500.0)
    batch = task.sample(8, rng=0)
    heading = batch.meta["heading"].T
    for offset_deg, acc in ((5.0, 1.0), (15.0, 0.0)):
        shifted = heading + np.deg2rad(offset_deg)
        out = 3.0 * np.stack([np.cos(shifted), np.sin(shifted)], axis=-1)  # the norm does not matter
        scores = task.score(out, batch)
        assert scores["accuracy"] == acc
        assert scores["circular_rmse_deg"] == pytest.approx(offset_deg, rel=1e-4)


# ---------------------------------------------------------------------------------------- NeuroGym adapter
def test_neurogym_adapter_pads_and_scores() -> None:
    timing = {"stimulus": ("choice", [300, 500, 700])}
    task = T.make("neurogym:PerceptualDecisionMaking-v0", dt=100, timing=timing)
    assert task.n_inputs == 3 and task.n_outputs == 3 and task.loss == "ce" and task.dt == 100
    batch = task.sample(24, rng=0)
    lengths = batch.meta["length"]
    assert set(lengths) == {5, 7, 9} and batch.inputs.shape[:2] == (9, 24)
    valid = np.arange(9)[:, None] < lengths[None, :]
    assert np.all(batch.mask[valid] == 1) and np.all(batch.mask[~valid] == 0)
    assert np.all(batch.inputs[~valid] == 0)
    gt = batch.targets.argmax(-1)
    np.testing.assert_array_equal(gt[lengths - 1, np.arange(24)], batch.meta["ground_truth"] + 1)
    assert np.all(gt[:-1][valid[1:]] == 0)  # fixate on every real step but the last (the decision)
    again = T.make(**task.config()).sample(24, rng=0)
    np.testing.assert_array_equal(again.inputs, batch.inputs)
    assert not np.array_equal(task.sample(24, rng=1).inputs, batch.inputs)
    assert task.score(10 * batch.targets, batch) == {"accuracy": 1.0, "fixation_accuracy": 1.0}
    wrong_out = 10 * np.roll(batch.targets, 1, axis=-1)
    assert task.score(wrong_out, batch) == {"accuracy": 0.0, "fixation_accuracy": 0.0}


def test_neurogym_adapter_unknown_env() -> None:
    with pytest.raises(ValueError, match="NoSuchEnv"):
        T.make("neurogym:NoSuchEnv-v0")


def test_neurogym_adapter_without_neurogym(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "neurogym", None)  # import neurogym now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'spikedyn\[neurogym\]'"):
        T.make("neurogym:PerceptualDecisionMaking-v0")


def test_2af_accuracy_excludes_uninformative_zero_coherence_trials():
    task = T.make("2af")
    batch = task.sample(400, rng=3)
    wrong_on_zero = batch.targets.copy()
    zero = batch.meta["coherence"] == 0
    assert zero.any() and (~zero).any()
    dec = task.span("decision")
    flipped = wrong_on_zero[dec][:, zero][..., [0, 2, 1]]
    wrong_on_zero[dec, np.flatnonzero(zero)] = flipped
    s = task.score(wrong_on_zero * 10, batch)
    assert s["accuracy"] == 1.0
    assert abs(s["accuracy_all"] - (1 - zero.mean())) < 1e-12
