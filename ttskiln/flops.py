"""Floating-point work of a graph at concrete input shapes, and the machine's GEMM peak.

FLOPs are counted from the ONNX graph: shapes are inferred with the inputs fixed to the
point's sizes, and every matrix product and convolution counts 2 x multiply-accumulates.
Element-wise ops are left out (they are memory-bound and small next to the products). The
GEMM peak is a large fp32 matrix product timed with the same thread count as the benchmarks,
so a report row's GFLOP/s can be read against what this machine can do at best.
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
    """Best fp32 GFLOP/s of a (size x size) @ (size x size) product on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal((size, size), dtype=np.float32))
    b = torch.from_numpy(rng.standard_normal((size, size), dtype=np.float32))
    for _ in range(2):
        torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return {"gflops": 2.0 * size**3 / best / 1e9, "size": size, "threads": threads, "library": "torch.mm fp32"}
