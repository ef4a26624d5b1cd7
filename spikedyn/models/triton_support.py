"""When the Triton kernels run (``triton_lif.py``, ``triton_rate.py``), and how a kernel is launched.

The knob: ``SPIKEDYN_TRITON`` in the environment, or ``set_triton(mode)`` / ``with use_triton(mode):``.

- ``"auto"`` (default): the Triton kernels run when the tensors are on a CUDA device, ``triton`` imports,
  the kernels cover the model's configuration and a SpikingRNN's ``spike_path`` is ``"auto"`` (an explicit
  ``"dense"`` / ``"sparse"`` keeps that torch kernel); otherwise the existing torch path runs. The first
  failure to compile or launch a kernel warns once and switches this process to the torch path: a forward
  (``run_triton``) then runs the torch forward, a backward (``run_triton_backward``) the torch adjoint on
  what the Triton forward stored, so the call that failed still returns its result.
- ``"off"``: never (the torch path everywhere).
- ``"on"``: wherever the kernels cover the configuration, on any device (a kernel failure raises). CPU
  tensors then run under Triton's interpreter (numpy, one program at a time: slow, for tests); a one-line
  ``TritonUnavailable`` (a ``ValueError``: exit 2 in the CLI) if ``triton`` does not import.

The call sites: ``fused.fused_rollout`` / ``fused_population_rollout`` (``SpikingRNN`` and a spiking
``Population`` with gradients), ``fused.eval_rollout`` / ``population_eval_rollout`` (the same without
gradients: the forward-only kernel), ``RateRNN.forward``, ``population_rate_rollout`` below (a rate
``Population``), ``population_outputs`` below (``Population.outputs``, spiking and rate) and
``learning/eprop._chunk_forward`` (the chunks of e-prop's forward).

``SPIKEDYN_TRITON_STORAGE`` / ``set_triton(mode, storage=...)``: the dtype in which the spiking forward
stores the membrane distance to threshold for the backward, ``"float32"`` (default), ``"float16"`` or
``"bfloat16"`` (float64 models always store float64).

``SPIKEDYN_TRITON_PRECISION`` / ``set_triton(mode, precision=...)``: how ``tl.dot`` multiplies float32 in the
recurrence, ``"ieee"`` (default: float32 FMAs), ``"tf32x3"`` (three TF32 tensor-core products, close to
float32: the spikes are exact in TF32, so only ``W``'s split loses bits) or ``"tf32"`` (one product; ``W``
rounded to 10 mantissa bits). float64 is always IEEE.

A kernel is written as a plain Python function in Triton's language and decorated with ``triton.jit`` on
first use. CPU tensors need Triton's interpreter, which Triton selects only when ``TRITON_INTERPRET=1`` is
in the environment before ``triton`` is imported (its own library functions are decorated at import):
``tests/conftest.py`` sets it on machines without CUDA.
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

MODES = ("auto", "on", "off")
STORAGES = ("float32", "float16", "bfloat16")
PRECISIONS = ("ieee", "tf32x3", "tf32")
_mode: str | None = None  # None: read SPIKEDYN_TRITON
_storage: str | None = None  # None: read SPIKEDYN_TRITON_STORAGE
_precision: str | None = None  # None: read SPIKEDYN_TRITON_PRECISION
_failed: str | None = None  # under "auto": the first kernel failure of this process (then the torch path)
R = TypeVar("R")


def triton_mode() -> str:
    """The current mode: ``set_triton``'s, else ``$SPIKEDYN_TRITON``, else ``"auto"``."""
    mode = _mode if _mode is not None else os.environ.get("SPIKEDYN_TRITON", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"SPIKEDYN_TRITON={mode!r}: choose one of {list(MODES)}")
    return mode


def triton_storage() -> str:
    """The storage dtype of the spiking kernels' membrane distance (module doc)."""
    name = _storage if _storage is not None else os.environ.get("SPIKEDYN_TRITON_STORAGE", "float32").strip().lower()
    if name not in STORAGES:
        raise ValueError(f"SPIKEDYN_TRITON_STORAGE={name!r}: choose one of {list(STORAGES)}")
    return name


def triton_precision() -> str:
    """The float32 product of the kernels' ``tl.dot`` (module doc)."""
    name = (_precision if _precision is not None
            else os.environ.get("SPIKEDYN_TRITON_PRECISION", "ieee").strip().lower())
    if name not in PRECISIONS:
        raise ValueError(f"SPIKEDYN_TRITON_PRECISION={name!r}: choose one of {list(PRECISIONS)}")
    return name


def set_triton(mode: str | None, storage: str | None = None, precision: str | None = None) -> None:
    """Set the mode, the storage dtype and the float32 dot precision for this process (module doc);
    ``None``: back to the environment / default."""
    global _mode, _storage, _precision
    if mode is not None and mode not in MODES:
        raise ValueError(f"unknown Triton mode {mode!r}; choose one of {list(MODES)}")
    if storage is not None and storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}; choose one of {list(STORAGES)}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    _mode, _storage, _precision = mode, storage, precision


@contextlib.contextmanager
def use_triton(mode: str, storage: str | None = None, precision: str | None = None) -> Iterator[None]:
    """``with use_triton("on"):`` ... (restores the previous settings afterwards)."""
    old = (_mode, _storage, _precision)
    set_triton(mode, storage, precision)
    try:
        yield
    finally:
        set_triton(*old)


@functools.cache
def triton_available() -> bool:
    """Whether ``import triton`` works here."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:
        return False
    return True


class TritonUnavailable(ValueError):
    """The Triton kernels were asked for (``SPIKEDYN_TRITON=on``) where they cannot run: a user's setting, so a
    ``ValueError`` (the CLI prints its one line and exits 2)."""


def wants_triton(t: torch.Tensor) -> bool:
    """Whether the kernels should run on tensors like ``t`` in the current mode (the caller checks that
    they cover the configuration)."""
    mode = triton_mode()
    if mode == "off":
        return False
    if mode == "on":
        if not triton_available():
            raise TritonUnavailable("SPIKEDYN_TRITON=on but triton does not import: pip install triton "
                               "(Linux x86_64), or set SPIKEDYN_TRITON=auto")
        return t.dtype in (torch.float32, torch.float64)
    return t.is_cuda and t.dtype in (torch.float32, torch.float64) and _failed is None and triton_available()


def run_triton(kernel: Callable[[], R]) -> R | None:
    """``kernel()`` (a Triton forward); under ``"auto"`` a failure to compile or launch warns once, returns
    None (the caller then runs its torch path) and keeps ``wants_triton`` false for the rest of the process;
    under ``"on"`` the error propagates. Running out of GPU memory propagates in every mode: it is the
    call's size (an evaluation batch larger than training's, say), which the torch path would not fit
    either, and it must not switch the rest of the run off the kernels."""
    if triton_mode() == "on":
        return kernel()
    try:
        return kernel()
    except torch.cuda.OutOfMemoryError:  # the call's size, not the kernel: the torch path needs more memory
        raise
    except Exception as e:  # noqa: BLE001 - any compile/launch error: the torch path computes the same map
        _fall_back(e)
        return None


def run_triton_backward(kernel: Callable[[], R], torch_path: Callable[[], R], strict: bool) -> R:
    """``kernel()`` (a Triton backward, inside autograd); if it fails to compile or launch and the forward ran
    under ``"auto"`` (``strict`` False), warn once as ``run_triton`` does, switch this process to the torch
    path and return ``torch_path()`` (the torch adjoint of the same call); ``strict`` (``"on"`` when the
    forward ran): the error propagates."""
    if strict:
        return kernel()
    try:
        return kernel()
    except torch.cuda.OutOfMemoryError:  # as run_triton: not a kernel failure
        raise
    except Exception as e:  # noqa: BLE001 - as run_triton
        _fall_back(e)
    return torch_path()


def _fall_back(e: Exception) -> None:
    """Record the first kernel failure of the process (``wants_triton`` is then false under "auto") and warn."""
    global _failed
    if _failed is None:
        warnings.warn(f"the Triton kernel failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                      "; running the torch path from now on (SPIKEDYN_TRITON=on raises instead, =off skips "
                      "Triton)", RuntimeWarning, stacklevel=4)  # fmt: skip
    _failed = f"{type(e).__name__}: {e}"


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1`` when it was imported)."""
    from triton import knobs

    return bool(knobs.runtime.interpret)


@functools.cache
def _built(fn: Callable) -> Any:
    import triton

    return triton.jit(fn)


def launcher(fn: Callable, like: torch.Tensor) -> Any:
    """The kernel ``fn`` decorated once with ``triton.jit``; CPU tensors need the interpreter (module doc)."""
    if not like.is_cuda and not interpreting():
        raise TritonUnavailable("the Triton kernels got CPU tensors: set TRITON_INTERPRET=1 before Python starts "
                           "(Triton's interpreter), or SPIKEDYN_TRITON=auto to use them only on CUDA")
    return _built(fn)


def population_rate_rollout(pop: Any, u: torch.Tensor, x0: torch.Tensor, xi: torch.Tensor | None,
                            scale: torch.Tensor | None) -> tuple | None:
    """A rate ``Population``'s rollout by the Triton rate kernels with their member axis
    (``triton_rate.population_rollout``; same outputs and draws as ``Population._rate_rollout``) where the
    kernels are wanted (``wants_triton``); None elsewhere, or where the kernel failed under "auto" (warned
    once, ``run_triton``): the caller then runs its torch path."""
    if not wants_triton(u):
        return None
    from .triton_rate import population_rollout

    return run_triton(lambda: population_rollout(pop, u, x0, xi, scale))


OUTPUT_CHUNK_BYTES = 2**30  # Population.outputs on the kernels: the per-step tensors one launch may hold


def output_step_bytes(pop: Any, u: torch.Tensor) -> int:
    """What one input step of ``population_outputs`` holds, about: six ``[E, B, N]`` tensors (the input current or
    drive and its contiguous copy, the noise, the states or spike counts, rbar or ``f(x)``, the readout's copy)."""
    return 6 * pop.size * u.shape[-2] * pop.n_hidden * u.element_size()


def population_outputs(pop: Any, u: torch.Tensor, x0: torch.Tensor | None = None, xi: torch.Tensor | None = None,
                       scale: torch.Tensor | None = None) -> torch.Tensor | None:
    """``Population.outputs`` (``y [E, T, B, O]``, no gradient) by the Triton forward kernels where they are wanted
    (``wants_triton``), in chunks of time so that memory stays bounded as in the torch path: a spiking ``pop``
    by the forward-only kernel (``triton_lif.population_outputs``), a rate ``pop`` (with the population's draws
    ``x0``, ``xi``, ``scale``) by the rate forward kernel (``triton_rate.population_outputs``). Each chunk (one
    launch) holds at most about ``OUTPUT_CHUNK_BYTES`` (1 GiB) of per-step tensors (``output_step_bytes``), and
    at least one step. None elsewhere, or where the kernel failed under "auto" (warned once, ``run_triton``):
    the caller then runs its torch path. The caller checks that the kernels cover the body."""
    if not wants_triton(u):
        return None
    chunk = max(1, min(u.shape[-3], OUTPUT_CHUNK_BYTES // output_step_bytes(pop, u)))
    if pop.body.kind == "spiking":
        from . import triton_lif

        return run_triton(lambda: triton_lif.population_outputs(pop, u, chunk))
    from . import triton_rate

    return run_triton(lambda: triton_rate.population_outputs(pop, u, x0, xi, scale, chunk))
