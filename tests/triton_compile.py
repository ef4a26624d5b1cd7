"""Compile the Triton kernels for an NVIDIA GPU without one: ``python tests/triton_compile.py [ARCH]``.

Triton's own compiler (and the ptxas its wheel ships) lowers each kernel to PTX and a cubin for compute
capability ARCH (default 90: H100/H200), for the constexpr combinations below; the interpreter that runs
the kernels on the CPU (tests/test_triton.py) does not type-check or lower them. Must run without
TRITON_INTERPRET (tests/test_triton.py starts it in a fresh process). Prints one JSON line per kernel.
"""
from __future__ import annotations

import inspect
import json
import sys
import time

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from spikedyn.models import triton_lif, triton_rate

INT8 = {"Z", "Z0", "REFR"}
INTS = {"T", "E", "Bsz", "N", "n_ref"}


def signature(fn, dtype: str, overrides: dict) -> dict:
    """Triton's signature of ``fn``: pointers of ``dtype`` (the spike stores int8), int32 sizes, constexprs."""
    sig = {}
    for name, param in inspect.signature(fn).parameters.items():
        if "constexpr" in str(param.annotation):
            sig[name] = "constexpr"
        else:
            sig[name] = "i32" if name in INTS else "*i8" if name in INT8 else f"*{dtype}"
    return {**sig, **overrides}


def spiking(resident: bool, **kw) -> dict:
    base = dict(K=2, BB=16, BN=64 if not resident else 32, RESET=1, ADAPTIVE=True, HAS_REF=True, SYN=True,
                FILTER=True, W_RESIDENT=resident, PREC="ieee")
    return {**base, **kw}


F16_X = {"X": "*fp16"}  # the half-precision storage of the membrane distance
KERNELS = [
    ("spiking_forward_tiled_fp32_f16storage", triton_lif._spiking_forward, spiking(False, FIRST=1, STORE=1), "fp32",
     F16_X),
    ("spiking_forward_tiled_tf32x3", triton_lif._spiking_forward, spiking(False, PREC="tf32x3", FIRST=1, STORE=1),
     "fp32", {}),
    ("spiking_forward_resident_fp64", triton_lif._spiking_forward, spiking(True, RESET=0, K=1, FIRST=1, STORE=1),
     "fp64", {}),
    # a chunk of the e-prop rollout: from a carried state, the spikes before its first substep in Z0
    ("spiking_forward_from_state_resident_fp32", triton_lif._spiking_forward, spiking(True, FIRST=0, STORE=1), "fp32",
     {}),
    # forward only (evaluation without gradients): nothing stored for a backward, the spikes in a ring of two;
    # from a carried state (Population.outputs' chunks of time)
    ("spiking_forward_only_tiled_fp32", triton_lif._spiking_forward, spiking(False, FIRST=1, STORE=0), "fp32", {}),
    ("spiking_forward_only_from_state_resident_fp32", triton_lif._spiking_forward,
     spiking(True, K=1, RESET=0, FIRST=0, STORE=0), "fp32", {}),
    ("spiking_backward_tiled_fp32_f16storage", triton_lif._spiking_backward,
     spiking(False, HAS_GR=True, HAS_GC=True, TRUNC=False, SURR=0), "fp32", F16_X),
    ("spiking_backward_resident_fp64", triton_lif._spiking_backward,
     spiking(True, HAS_GR=True, HAS_GC=False, TRUNC=False, SURR=2, RESET=0, FILTER=False), "fp64", {}),
    ("rate_forward_tiled_fp32", triton_rate._rate_forward,
     dict(BB=16, BN=64, ACT=0, HAS_NOISE=True, W_RESIDENT=False, PREC="ieee"), "fp32", {}),
    ("rate_backward_resident_fp64", triton_rate._rate_backward,
     dict(BB=16, BN=32, ACT=3, TRUNC=False, W_RESIDENT=True, PREC="ieee"), "fp64", {}),
]


def main(arch: int = 90) -> None:
    for name, fn, consts, dtype, overrides in KERNELS:
        t0 = time.perf_counter()
        sig = signature(fn, dtype, overrides)
        src = ASTSource(fn=triton.jit(fn), signature=sig, constexprs=consts)
        k = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": False})
        print(json.dumps({"kernel": name, "arch": arch, "cubin_bytes": len(k.asm["cubin"]),
                          "shared_bytes": k.metadata.shared, "seconds": round(time.perf_counter() - t0, 2)}),
              flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 90)
