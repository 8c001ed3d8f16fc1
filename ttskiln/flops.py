"""Floating-point work of a graph at concrete input shapes, and the machine's GEMM peak.

FLOPs are counted from the ONNX graph: shapes are inferred with the inputs fixed to the
point's sizes, and every matrix product and convolution counts 2 x multiply-accumulates.
Element-wise ops are left out (they are memory-bound and small next to the products). The
GEMM peaks are large matrix products per precision (fp32, fp16, int8), each by the fastest
kernel available, timed with the same thread count as the benchmarks, so a report row's
GFLOP/s can be read against what this machine can do at best in that precision.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

PRODUCT_OPS = {"MatMul", "MatMulInteger", "Gemm", "Conv", "ConvInteger", "ConvTranspose"}


def count_flops(model_path: str, input_shapes: dict[str, list[int]]) -> float:
    """2 x MACs of every MatMul/Gemm/Conv/ConvTranspose (and their integer forms)."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    for value in model.graph.input:
        if value.name in input_shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, input_shapes[value.name]):
                dim.ClearField("dim_param")
                dim.dim_value = int(size)
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int]] = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0.0
    for node in inferred.graph.node:
        if node.op_type not in PRODUCT_OPS:
            continue
        out = shapes.get(node.output[0])
        weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
        if out is None or weight is None:
            continue
        if node.op_type in ("MatMul", "MatMulInteger"):
            total += 2.0 * math.prod(out) * (weight[-2] if len(weight) >= 2 else weight[0])
        elif node.op_type == "Gemm":
            a = shapes.get(node.input[0])
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            k = (a[0] if trans_a else a[-1]) if a else None
            total += 2.0 * math.prod(out) * k if k else 0.0
        elif node.op_type in ("Conv", "ConvInteger"):
            # weight (C_out, C_in / groups, *kernel)
            total += 2.0 * math.prod(out) * math.prod(weight[1:])
        else:  # ConvTranspose: weight (C_in, C_out / groups, *kernel); work scales with the input
            x = shapes.get(node.input[0])
            total += 2.0 * math.prod(x) * math.prod(weight[1:]) if x else 0.0
    return total


def gemm_peak(threads: int, size: int = 2048, repeats: int = 10) -> dict[str, Any]:
    """The machine's GEMM peaks per precision on ``threads`` threads, with the theoretical
    figure where the CPU's features and clock can be read.

    Each precision takes the fastest kernel available: fp32 the best of ONNX Runtime's MatMul,
    ``torch.mm`` and ``numpy.matmul``; fp16 ONNX Runtime's fp16 MatMul (or fp32, when that is
    faster: a CPU without fp16 arithmetic converts); int8 ONNX Runtime's integer GEMM
    (MatMulInteger). A benchmark row is scored against its own precision's peak, so a share
    above 100 % means the peak is wrong, not that the row is fast. ``gflops`` (the fp32 peak)
    is kept for older readers.
    """
    kernels = {
        "fp32": {"onnxruntime MatMul": _ort_gemm(threads, size, "float32"), "torch.mm": _torch_gemm(threads, size),
                 "numpy.matmul": _numpy_gemm(threads, size)},
        "fp16": {"onnxruntime MatMul fp16": _ort_gemm(threads, size, "float16")},
        "int8": {"onnxruntime MatMulInteger": _ort_gemm(threads, size, "int8")},
    }
    peaks = {}
    for precision, timings in kernels.items():
        found = {name: 2.0 * size**3 / _best(fn, repeats) / 1e9 for name, fn in timings.items() if fn is not None}
        best = max(found, key=found.get)
        peaks[precision] = {"gflops": found[best], "kernel": best, "kernels": found}
    if peaks["fp32"]["gflops"] > peaks["fp16"]["gflops"]:  # fp16 graphs run no slower than fp32 work
        peaks["fp16"] = {**peaks["fp32"], "kernel": f"{peaks['fp32']['kernel']} (fp32 beats fp16 here)",
                         "kernels": {**peaks["fp16"]["kernels"], **peaks["fp32"]["kernels"]}}
    return {
        "gflops": peaks["fp32"]["gflops"],
        "library": peaks["fp32"]["kernel"],
        "size": size,
        "threads": threads,
        "peaks": peaks,
        "theoretical": theoretical_peaks(threads),
    }


def theoretical_peaks(threads: int) -> dict[str, Any]:
    """Peak GFLOP/s (GOP/s for int8) from the CPU's vector features and advertised clock, or
    an empty dict where they cannot be read. Assumes two FMA pipes of the widest vector unit
    (AVX-512, else AVX2), one thread per core; int8 counts VNNI dot products (4 MACs per
    32-bit lane) where present."""
    try:
        import cpuinfo

        info = cpuinfo.get_cpu_info()
        hz = float((info.get("hz_advertised") or info.get("hz_actual") or (0, 0))[0])
    except Exception:  # no readable CPU description: no theoretical figure
        return {}
    flags = set(info.get("flags", []))
    if not hz:
        return {}
    width = 512 if "avx512f" in flags else 256 if "avx2" in flags else 128
    fp32_lanes = width // 32
    fp32 = threads * hz * 2 * 2 * fp32_lanes / 1e9  # 2 pipes x (multiply + add)
    vnni = bool(flags & {"avx512_vnni", "avx512vnni", "avx_vnni"})
    int8 = fp32 * (4 if vnni else 2)
    return {"cpu": info.get("brand_raw"), "clock_ghz": hz / 1e9, "vector_bits": width, "vnni": vnni,
            "fp32": fp32, "int8": int8,
            "assumes": "2 FMA pipes of the widest vector unit at the advertised clock, one thread per core"}


def _best(fn: Any, repeats: int) -> float:
    fn()
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _torch_gemm(threads: int, size: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal((size, size), dtype=np.float32))
    b = torch.from_numpy(rng.standard_normal((size, size), dtype=np.float32))
    return lambda: torch.mm(a, b)


def _numpy_gemm(threads: int, size: int) -> Any:
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)

    def run() -> Any:
        with threadpool_limits(threads):
            return a @ b

    return run


def _ort_gemm(threads: int, size: int, dtype: str) -> Any:
    """One MatMul (or MatMulInteger) node run by ONNX Runtime; None if it will not load."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    if dtype == "int8":
        # uint8 activations x int8 weights: the pairing ONNX Runtime's quantizers emit.
        node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        elem, out = {"a": TensorProto.UINT8, "b": TensorProto.INT8}, TensorProto.INT32
        a = rng.integers(0, 255, (size, size), dtype=np.uint8)
        b = rng.integers(-100, 100, (size, size), dtype=np.int8)
    else:
        kind = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
        elem, out = {"a": kind, "b": kind}, kind
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
        a = rng.standard_normal((size, size)).astype(dtype)
        b = rng.standard_normal((size, size)).astype(dtype)
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info(n, elem[n], [size, size]) for n in "ab"],
                              [helper.make_tensor_value_info("y", out, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception:  # this build has no such kernel
        return None
    feed = {"a": a, "b": b}
    return lambda: session.run(None, feed)
