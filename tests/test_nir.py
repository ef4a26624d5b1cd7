"""NIR export/import: exact spikedyn round trips and round trips with the real snnTorch and norse."""
from __future__ import annotations

import logging

import nir
import numpy as np
import pytest
import torch
from spikedyn.hardware.nir_io import flatten, spec_from_nir

from spikedyn.export.nir import from_nir, spec_from_model, to_nir
from spikedyn.models import RateRNN, SpikingRNN

N, I, O, T, B = 20, 3, 2, 150, 4


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _lif(**kw) -> SpikingRNN:
    m = SpikingRNN(I, N, O, **{"gain": 2.0, **kw})
    with torch.no_grad():
        if m.has_bias:
            m.b.uniform_(0.0, 0.1)
        m.W_in.mul_(2.0)
    return m


def _x() -> torch.Tensor:
    return torch.randn(T, B, I, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "kw",
    [
        dict(du=1.0, dv=0.1, reset="zero"),  # LIF
        dict(tau_syn=5.0, tau_mem=20.0, reset="zero", delay_in=1, substeps=3),  # CubaLIF, Lava-style
        dict(tau_mem=float("inf"), reset="subtract"),  # IF
        dict(neuron="alif", reset="subtract", refractory=2.0, tau_syn=4.0, delay_in=2, delay_rec=1),
        dict(du=1.0, dv=0.1, reset="zero", v_leak=0.3, v_reset=-0.2),  # NIR's LIF: leak to v_leak, reset to v_reset
        dict(tau_syn=5.0, tau_mem=20.0, reset="zero", v_leak=-0.1, v_reset=0.4),
    ],
    ids=["lif", "cubalif-lava", "if-subtract", "alif-refractory-delays", "lif-vleak-vreset", "cubalif-vleak-vreset"],
)
def test_spikedyn_round_trip_is_exact(kw, tmp_path):
    m = _lif(**kw)
    x = _x()
    path = tmp_path / "net.nir"
    to_nir(m, path=path)
    m2 = from_nir(path)
    assert m2.config() == m.config()
    z, z2 = m.spike_trains(x), m2.spike_trains(x)
    assert z.sum() > 50
    torch.testing.assert_close(z2, z, rtol=0, atol=0)
    torch.testing.assert_close(m2(x).y, m(x).y, rtol=0, atol=0)


def test_graph_layout_and_metadata():
    m = _lif(neuron="alif", reset="subtract", tau_syn=5.0, delay_in=1)
    g = to_nir(m, dt=1e-3)
    types = {k: type(n).__name__ for k, n in g.nodes.items()}
    assert types == {"input": "Input", "delay_in": "Delay", "w_in": "Affine", "lif": "CubaLIF", "w_rec": "Linear",
                     "readout_filter": "LI", "w_out": "Affine", "output": "Output"}  # fmt: skip
    assert ("lif", "w_rec") in g.edges and ("w_rec", "lif") in g.edges
    lif = g.nodes["lif"]
    dv = m.params.dv
    np.testing.assert_allclose(lif.tau_mem, 1e-3 / dv)
    np.testing.assert_allclose(lif.r * (1e-3 / lif.tau_mem), 1.0)  # a unit current adds 1 to v
    assert lif.metadata["reset"] == "subtract" and np.all(lif.metadata["beta"] == m.beta.numpy())
    np.testing.assert_allclose(g.nodes["delay_in"].delay, 1e-3)
    # without spikedyn's metadata the same graph is read from NIR's own fields (to float precision)
    g.metadata = {}
    spec = spec_from_nir(g, dt=1e-3)
    ref = spec_from_model(m)
    np.testing.assert_allclose(spec.dv, ref.dv, rtol=1e-12)
    np.testing.assert_allclose(spec.W_rec, ref.W_rec, rtol=1e-12)
    np.testing.assert_allclose(spec.bias, ref.bias, rtol=1e-12, atol=1e-15)
    assert spec.reset == "subtract" and spec.delay_in == 1 and spec.adaptive


def test_nested_layout_flattens_to_the_same_network():
    m = _lif(du=1.0, dv=0.1, reset="zero")
    g = to_nir(m, nested=True)
    assert isinstance(g.nodes["rnn"], nir.NIRGraph)
    nodes, edges = flatten(g)
    assert {("rnn.lif", "rnn.w_rec"), ("w_in", "rnn.lif"), ("rnn.lif", "readout_filter")} <= set(edges)
    x = _x()
    torch.testing.assert_close(from_nir(g).spike_trains(x), m.spike_trains(x), rtol=0, atol=0)


def _hook_spikes(net: torch.nn.Module, cls: type, x: torch.Tensor) -> torch.Tensor:
    """Run a nirtorch-built network step by step and record the spikes of its one ``cls`` module."""
    mods = [mod for mod in net.modules() if isinstance(mod, cls)]
    assert len(mods) == 1, mods
    rec: list[torch.Tensor] = []
    mods[0].register_forward_hook(lambda mod, inp, out: rec.append(out if isinstance(out, torch.Tensor) else out[0]))
    state = None
    with torch.no_grad():
        for t in range(x.shape[0]):
            _, state = net(x[t], state)
    return torch.stack(rec)


# -- snnTorch 1.0 --------------------------------------------------------------------------------------
# LIF (du = 1) and current-based LIF (du < 1; NIR CubaLIF, whose bias would be v_leak: none here)
_INTEROP = {"lif": dict(du=1.0, dv=0.1), "cubalif": dict(du=0.25, dv=0.1, bias=False)}


@pytest.mark.parametrize("kind", list(_INTEROP))
def test_spikedyn_to_snntorch_same_spikes(kind, capsys):
    import snntorch as snn
    from snntorch.import_nir import import_from_nir

    m = _lif(reset="zero", tau_out=0.0, **_INTEROP[kind])
    x = _x()
    net = import_from_nir(to_nir(m, dt=1e-4, nested=True))  # snnTorch assumes dt = 1e-4 s
    z = _hook_spikes(net, snn.Leaky if kind == "lif" else snn.Synaptic, x)
    assert m.spike_trains(x).sum() > 100
    torch.testing.assert_close(z, m.spike_trains(x), rtol=0, atol=0)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_snntorch_rleaky_to_spikedyn_same_spikes(reset, capsys):
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(I, N, bias=False)
            # reset="zero" with reset_delay=False is what NIR's LIF means; snnTorch's default RLeaky
            # (subtract, delayed reset) is spikedyn's reset="subtract", which NIR cannot say.
            self.rl = snn.RLeaky(beta=0.9, linear_features=N, reset_mechanism=reset,
                                 reset_delay=reset == "subtract", init_hidden=True)
            self.out = torch.nn.Linear(N, O)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.rl(self.fc(x)))

    net = Net()
    with torch.no_grad():
        net.fc.weight.mul_(3.0)
        net.rl.recurrent.weight.mul_(2.0)
        net.rl.recurrent.bias.uniform_(0.0, 0.1)
    graph = export_to_nir(net, torch.randn(1, I), ignore_dims=[0])
    x = _x()
    net.rl.reset_hidden()
    z = []
    with torch.no_grad():
        for t in range(T):
            net(x[t])
            z.append(net.rl.spk.clone())
    m = from_nir(graph, dt=1e-4, reset=reset)
    assert m.reset == reset and m.params.du == 1.0
    torch.testing.assert_close(m.W_out, net.out.weight)
    torch.testing.assert_close(m.spike_trains(x), torch.stack(z), rtol=0, atol=0)


# -- norse 1.1 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(_INTEROP))
def test_spikedyn_to_norse_same_spikes(kind, caplog):
    import norse.torch as norse
    from norse.torch.module.lif_box import LIFBoxCell

    caplog.set_level(logging.ERROR)
    m = _lif(reset="zero", tau_out=0.0, **_INTEROP[kind])
    x = _x()
    # norse ignores NIR's r (fold it into the weights) and runs the recurrent Affine through nirtorch
    net = norse.from_nir(to_nir(m, dt=1e-3, fold_r=True), dt=1e-3)
    torch.testing.assert_close(_hook_spikes(net, LIFBoxCell, x), m.spike_trains(x), rtol=0, atol=0)


def test_norse_to_spikedyn_same_spikes():
    import norse.torch as norse
    from norse.torch.functional.lif_box import LIFBoxParameters
    from norse.torch.module.lif_box import LIFBoxCell

    class Net(torch.nn.Module):  # norse 1.1 exports box cells, not its recurrent cells
        def __init__(self) -> None:
            super().__init__()
            self.w_in = torch.nn.Linear(I, N)
            self.lif = LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(100.0), v_th=torch.tensor(0.3)), dt=1e-3)
            self.w_out = torch.nn.Linear(N, O)

        def forward(self, x, state=None):
            z, state = self.lif(self.w_in(x), state)
            return self.w_out(z), state, z

    net = Net()
    with torch.no_grad():
        net.w_in.weight.mul_(5.0)
    graph = norse.to_nir(net, torch.randn(1, I))
    x = _x()
    state, z = None, []
    with torch.no_grad():
        for t in range(T):
            _, state, zt = net(x[t], state)
            z.append(zt)
    z = torch.stack(z)
    assert z.sum() > 100
    # norse 1.1 writes tau = dt / tau_mem_inv (= dt * tau_mem): scale it back by 1/dt
    m = from_nir(graph, dt=1e-3, tau_scale=1e3)
    np.testing.assert_allclose(m.params.dv, 0.1, rtol=1e-6)
    torch.testing.assert_close(m.spike_trains(x), z, rtol=0, atol=0)


def test_foreign_nir_lif_with_v_leak_and_v_reset_runs_nir_semantics():
    """A NIR LIF written by hand (no spikedyn metadata) that leaks toward v_leak != 0 and resets to
    v_reset != 0 -- refused before -- imports as the map's v_leak / v_reset option and fires exactly as an
    independent forward-Euler simulation of NIR's LIF equations, tau dv/dt = (v_leak - v) + r I."""
    rng = np.random.default_rng(3)
    dt, tau, r, v_leak, v_reset, v_th = 1e-3, 1e-2, 2.0, 0.4, -0.3, 1.0
    W_in, W_rec, W_out = rng.normal(size=(N, I)) * 2.0, rng.normal(size=(N, N)) / np.sqrt(N), rng.normal(size=(O, N))
    full = lambda v: np.full(N, v)  # noqa: E731
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([I])}), "w_in": nir.Linear(weight=W_in),
               "lif": nir.LIF(tau=full(tau), r=full(r), v_leak=full(v_leak), v_threshold=full(v_th),
                              v_reset=full(v_reset)),
               "w_rec": nir.Linear(weight=W_rec), "w_out": nir.Linear(weight=W_out),
               "output": nir.Output(output_type={"output": np.array([O])})},
        edges=[("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "w_out"),
               ("w_out", "output")],
    )  # fmt: skip
    m = from_nir(g, dt=dt)
    assert (m.v_leak, m.v_reset, m.reset) == (pytest.approx(v_leak), pytest.approx(v_reset), "zero")
    x = _x().double()
    z_ref, v, z = [], np.zeros((B, N)), np.zeros((B, N))
    for t in range(T):  # NIR's LIF, forward Euler; v is reset to v_reset in the step it spikes
        current = x[t].numpy() @ W_in.T + z @ W_rec.T
        v = v + dt / tau * (v_leak - v + r * current)
        z = (v > v_th).astype(float)
        v = np.where(z > 0, v_reset, v)
        z_ref.append(z)
    z_ref = np.stack(z_ref)
    assert 200 < z_ref.sum() < 0.8 * z_ref.size
    np.testing.assert_array_equal(m.double().spike_trains(x).numpy(), z_ref)
    g2 = to_nir(m)
    np.testing.assert_allclose(g2.nodes["lif"].v_reset, v_reset)
    np.testing.assert_allclose(g2.nodes["lif"].v_leak, v_leak)


# -- what is not supported says so ----------------------------------------------------------------------
def _lif_node(n: int) -> nir.LIF:
    return nir.LIF(tau=np.full(n, 1e-2), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n))


def test_unsupported_graphs_raise_clear_errors():
    two_layers = nir.NIRGraph.from_list(nir.Linear(weight=np.ones((N, I))), _lif_node(N),
                                        nir.Linear(weight=np.ones((O, N))), _lif_node(O))
    # two spiking layers are a SpikingNetwork now (tests/test_nir_network.py); spec_from_nir reads one
    assert type(from_nir(two_layers, dt=1e-3)).__name__ == "SpikingNetwork"
    with pytest.raises(ValueError, match="exactly one spiking layer"):
        spec_from_nir(two_layers, dt=1e-3)
    foreign = to_nir(_lif(du=1.0, dv=0.1, reset="zero"))
    foreign.metadata = {}  # what other tools write: no time step anywhere in the graph
    with pytest.raises(ValueError, match="pass dt="):
        from_nir(foreign)
    g = to_nir(_lif(du=1.0, dv=0.1, reset="zero"))
    g.nodes["scale"] = nir.Scale(scale=np.ones(I))  # a node type spikedyn has no place for
    g.edges = [("input", "scale"), ("scale", "w_in")] + [e for e in g.edges if e != ("input", "w_in")]
    with pytest.raises(ValueError, match="Scale"):
        from_nir(g)
    with pytest.raises(ValueError, match="spikedyn.mirror"):
        to_nir(RateRNN(I, N, O))
    with pytest.raises(FileNotFoundError, match="no NIR file"):
        from_nir("/nonexistent/net.nir")


@pytest.mark.parametrize("kind", ["rnn", "network"])
@pytest.mark.parametrize("damage", ["{not json", "[1, 2]"])
def test_damaged_spikedyn_metadata_is_one_line_naming_the_entry(kind, damage):
    """spikedyn's metadata entries that are not JSON objects (a damaged or foreign file) used to raise
    ``json.JSONDecodeError: Expecting value: line 1 column 1``; now one line naming the entry."""
    from spikedyn.hardware.nir_io import METADATA_KEY
    from spikedyn.hardware.nir_network import NETWORK_KEY

    from spikedyn.export.nir import MODEL_KEY
    from spikedyn.models import SpikingNetwork

    if kind == "rnn":
        model, keys = SpikingRNN(2, 4, 1, reset="zero"), (MODEL_KEY, METADATA_KEY)
    else:
        model, keys = SpikingNetwork.build(2, [dict(size=4), dict(size=3)], n_out=1, seed=0), (MODEL_KEY, NETWORK_KEY)
    for key in keys:
        graph = to_nir(model)
        assert key in graph.metadata
        graph.metadata[key] = damage
        with pytest.raises(ValueError, match=rf"^graph.metadata\['{key}'\] is not spikedyn's JSON object; delete") as e:
            from_nir(graph)
        assert "\n" not in str(e.value)
