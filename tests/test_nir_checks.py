"""NIR import checks the graph against its metadata and its Input/Output sizes (naming the node), reads
damaged files as one line with the path, and ``to_nir(target=...)`` exports what snnTorch and norse
can read, saying what was left out (issue 17)."""
from __future__ import annotations

import json
import logging
import warnings

import nir
import numpy as np
import pytest
import torch

from spikedyn.export.nir import DROPPED_KEY, NIRExportWarning, from_nir, to_nir
from spikedyn.models import SpikingRNN

I, N, O = 3, 16, 2


def _default(seed: int = 0) -> SpikingRNN:
    """A default SpikingRNN (LIF, reset="subtract", readout filter tau_out = 20 ms), made to spike."""
    torch.manual_seed(seed)
    m = SpikingRNN(I, N, O)
    with torch.no_grad():
        m.W_in.mul_(3.0)
        m.b.uniform_(0.0, 0.1)
    return m


def _x(T: int = 120, B: int = 3) -> torch.Tensor:
    return torch.randn(T, B, I, generator=torch.Generator().manual_seed(1))


def _foreign(m: SpikingRNN, **kw) -> nir.NIRGraph:
    g = to_nir(m, dt=1e-3, **kw)
    g.metadata = {}
    return g


# -- metadata never silently overrides the graph ---------------------------------------------------------
def test_edited_time_constant_is_refused_naming_the_node():
    """The graph's own tau used to be ignored in favour of the metadata's dv."""
    g = to_nir(_default())
    g.nodes["lif"].tau = g.nodes["lif"].tau * 2.0
    with pytest.raises(ValueError, match=r"NIR node 'lif' gives dv = .* metadata says") as info:
        from_nir(g)
    assert "delete graph.metadata['spikedyn']" in str(info.value)
    g = to_nir(_default())
    g.nodes["readout_filter"].tau = g.nodes["readout_filter"].tau * 3.0
    with pytest.raises(ValueError, match="'readout_filter' gives kappa"):
        from_nir(g)
    g = to_nir(_default())
    g.nodes["lif"].v_threshold = g.nodes["lif"].v_threshold * 1.5
    with pytest.raises(ValueError, match="'lif' gives v_th"):
        from_nir(g)
    g = to_nir(_default())
    g.nodes["w_in"].bias = g.nodes["w_in"].bias + 0.5
    with pytest.raises(ValueError, match="'lif': its bias differs"):
        from_nir(g)


def test_model_config_in_metadata_must_match_the_graph():
    g = to_nir(_default())
    cfg = json.loads(g.metadata["spikedyn_model"])
    cfg["dv"] = cfg["dv"] / 2.0  # a config edited after export
    g.metadata["spikedyn_model"] = json.dumps(cfg)
    with pytest.raises(ValueError, match="spikedyn_model.*dv = "):
        from_nir(g)
    # with both metadata entries gone, the graph's own constants are used (to float precision)
    g = to_nir(_default())
    g.nodes["lif"].tau = g.nodes["lif"].tau * 2.0
    g.metadata = {}
    m = from_nir(g, dt=1e-3)
    np.testing.assert_allclose(m.params.dv, _default().params.dv / 2.0, rtol=1e-12)


def test_untouched_graphs_still_round_trip_exactly():
    m = _default()
    m2 = from_nir(to_nir(m))
    torch.testing.assert_close(m2.spike_trains(_x()), m.spike_trains(_x()), rtol=0, atol=0)


# -- sizes: Input/Output nodes and weights, named -------------------------------------------------------
@pytest.mark.parametrize(
    "node, replacement, message",
    [
        ("input", nir.Input(input_type={"input": np.array([I + 2])}), "'input' declares 5 inputs"),
        ("output", nir.Output(output_type={"output": np.array([O + 1])}), "'output' declares 3 outputs"),
        ("w_rec", nir.Linear(weight=np.ones((N - 1, N - 1))), r"'w_rec': weight has shape \(15, 15\)"),
        ("w_out", nir.Affine(weight=np.ones((O, N - 1)), bias=np.zeros(O)), r"'w_out': readout weight has shape"),
        ("w_in", nir.Affine(weight=np.ones((N, I)), bias=np.zeros(N + 1)), r"'w_in': bias has shape \(17,\)"),
        ("readout_filter", nir.LI(tau=np.full(N - 4, 0.02), r=np.ones(N - 4), v_leak=np.zeros(N - 4)),
         r"'readout_filter': r has shape \(12,\)"),
    ],
)
def test_size_mismatches_name_the_node(node, replacement, message):
    """These used to be ignored (Input/Output) or surface as numpy broadcast errors."""
    g = _foreign(_default())
    g.nodes[node] = replacement
    with pytest.raises(ValueError, match=message):
        from_nir(g, dt=1e-3)


@pytest.mark.parametrize("value", [0.0, -1e-3, np.nan, np.inf])
def test_nonpositive_or_nonfinite_time_constants_are_clear_errors(value):
    """NIR tau_mem = 0 used to raise ZeroDivisionError."""
    m = _default()
    g = _foreign(SpikingRNN(I, N, O, tau_syn=5.0, reset="zero"))  # CubaLIF
    g.nodes["lif"].tau_mem = np.full(N, value)
    with pytest.raises(ValueError, match=r"NIR node 'lif': tau_mem .* must be a finite time constant > 0 s"):
        from_nir(g, dt=1e-3)
    g = _foreign(m)
    g.nodes["lif"].tau = np.full(N, value)
    with pytest.raises(ValueError, match=r"'lif': tau .* must be a finite time constant"):
        from_nir(g, dt=1e-3)
    with pytest.raises(ValueError, match="dt"):
        from_nir(_foreign(m), dt=value if value != 0.0 else -1.0)


@pytest.mark.parametrize("content", [b"", b"not a nir file", b"\x89HDF\r\n\x1a\n" + bytes(64)])
def test_unreadable_nir_file_is_one_line_with_the_path(tmp_path, content):
    """These used to be raw h5py errors without the path."""
    path = tmp_path / "net.nir"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="cannot read NIR file") as info:
        from_nir(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


# -- snnTorch and norse read a default SpikingRNN --------------------------------------------------------
def _hook_spikes(net: torch.nn.Module, cls: type, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mods = [mod for mod in net.modules() if isinstance(mod, cls)]
    assert len(mods) == 1, mods
    rec: list[torch.Tensor] = []
    mods[0].register_forward_hook(lambda mod, inp, out: rec.append(out if isinstance(out, torch.Tensor) else out[0]))
    state, ys = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = net(x[t], state)
            ys.append(y)
    return torch.stack(rec), torch.stack(ys)


def test_default_model_needs_a_target_for_snntorch():
    from snntorch.import_nir import import_from_nir

    with pytest.raises(ValueError, match="LI"):  # what the full graph (with its readout filter) gives
        import_from_nir(to_nir(_default(), dt=1e-4, nested=True))


@pytest.mark.parametrize("target", ["snntorch", "norse"])
def test_default_model_round_trips_through_snntorch_and_norse(target, caplog):
    """Issue 17: ``to_nir`` of a default SpikingRNN failed in snnTorch (``Unknown node type LI``).
    ``target=`` exports what the library reads, warns what it left out, and the library then runs
    the same spikes and outputs as spikedyn's import of that graph."""
    caplog.set_level(logging.ERROR)
    m, x = _default(), _x()
    with pytest.warns(NIRExportWarning, match="readout filter .*reset='subtract'"):
        g = to_nir(m, target=target)
    assert "LI" not in {type(n).__name__ for n in g.nodes.values()}
    assert len(json.loads(g.metadata[DROPPED_KEY])) == 2
    ref = from_nir(g)  # the network the library runs: m without the left-out features
    assert ref.reset == "zero" and ref.params.kappa == 0.0 and ref.params.dv == m.params.dv
    torch.testing.assert_close(ref.W_rec, m.W_rec_eff)
    if target == "snntorch":
        import snntorch as snn
        from snntorch.import_nir import import_from_nir

        z, y = _hook_spikes(import_from_nir(g), snn.Leaky, x)
    else:
        import norse.torch as norse
        from norse.torch.module.lif_box import LIFBoxCell

        z, y = _hook_spikes(norse.from_nir(g, dt=1e-3), LIFBoxCell, x)
    want = ref.spike_trains(x)
    assert want.sum() > 200
    torch.testing.assert_close(z, want, rtol=0, atol=0)
    torch.testing.assert_close(y, ref(x).y.detach(), rtol=1e-5, atol=1e-5)


def test_target_lists_every_feature_it_leaves_out():
    m = SpikingRNN(I, N, O, neuron="alif", refractory=2.0, delay_in=1, delay_rec=1, tau_syn=5.0)
    with torch.no_grad():
        m.b.fill_(0.05)
    with pytest.warns(NIRExportWarning) as record:
        g = to_nir(m, target="snntorch")
    text = str(record[0].message)
    for what in ("readout filter", "reset='subtract'", "ALIF", "refractory", "delays", "CubaLIF"):
        assert what in text, what
    assert {type(n).__name__ for n in g.nodes.values()} <= {"Input", "Affine", "Linear", "CubaLIF", "Output",
                                                            "NIRGraph"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a network snnTorch reads whole: no warning
        to_nir(SpikingRNN(I, N, O, reset="zero", tau_out=0.0), target="snntorch")
    with pytest.raises(ValueError, match="1e-4"):
        to_nir(m, target="snntorch", dt=1e-3)
    with pytest.raises(ValueError, match="unknown target"):
        to_nir(m, target="lava-dl")
