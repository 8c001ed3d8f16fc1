"""Each report row is scored against the GEMM peak of its own precision; above 100 % is flagged."""

from ttskiln.flops import gemm_peak
from ttskiln.report import COLUMNS, add_speed_context

PEAK = {"gflops": 100.0, "peaks": {"fp32": {"gflops": 100.0}, "fp16": {"gflops": 100.0}, "int8": {"gflops": 400.0}}}


def _row(variant, p50_ms, backend="onnxruntime-cpu"):
    return {"model": "m", "component": "c", "point": "p", "variant": variant, "backend": backend,
            "p50_ms": p50_ms, "passed": True, "gflop": 1.0 if variant == "fp32" else None}


def test_int8_rows_are_scored_against_the_int8_peak():
    rows = [_row("fp32", 20.0), _row("int8", 5.0)]  # 50 and 200 GFLOP/s of the fp32 graph's work
    over = add_speed_context(rows, PEAK)
    assert [r["peak_fraction"] for r in rows] == [0.5, 0.5]
    assert over == []


def test_a_row_above_its_peak_is_listed_not_clipped():
    rows = [_row("fp32", 5.0)]  # 200 GFLOP/s against a 100 GFLOP/s peak
    over = add_speed_context(rows, PEAK)
    assert rows[0]["peak_fraction"] == 2.0
    assert len(over) == 1 and "200 % of the measured fp32 peak" in over[0]


def test_measured_peaks_per_precision():
    peak = gemm_peak(1, size=256, repeats=2)
    assert set(peak["peaks"]) == {"fp32", "fp16", "int8"}
    fp32 = peak["peaks"]["fp32"]
    assert fp32["gflops"] == max(fp32["kernels"].values()) == peak["gflops"]
    assert {"onnxruntime MatMul", "torch.mm", "numpy.matmul"} <= set(fp32["kernels"])
    assert peak["peaks"]["fp16"]["gflops"] >= fp32["gflops"] * 0.999
    assert peak["peaks"]["int8"]["kernel"] == "onnxruntime MatMulInteger"


def test_bf16_rows_get_no_share_of_the_fp32_peak():
    # OpenVINO's bf16 hint over the fp32 graph: faster than the fp32 peak allows, and no bf16 peak is measured.
    rows = [_row("fp32", 20.0), _row("fp32", 5.0, backend="openvino-cpu-bf16"), _row("fp32", 10.0, backend="openvino-cpu")]
    over = add_speed_context(rows, PEAK)
    assert rows[0]["peak_fraction"] == 0.5 and rows[0]["no_peak"] is None
    assert rows[2]["peak_fraction"] == 1.0 and rows[2]["no_peak"] is None  # OpenVINO fp32 keeps the fp32 peak
    bf16 = rows[1]
    assert bf16["gflops"] == 200.0 and bf16["peak_fraction"] is None
    assert "no bf16 GEMM peak" in bf16["no_peak"]
    assert over == []  # no share, so nothing above 100 %
    assert dict(COLUMNS)["% of peak"](bf16) == "–"


def test_without_a_peak_no_row_is_given_a_reason():
    rows = [_row("fp32", 20.0), _row("fp32", 5.0, backend="openvino-cpu-bf16")]
    add_speed_context(rows, None)
    assert [r["peak_fraction"] for r in rows] == [None, None] and [r["no_peak"] for r in rows] == [None, None]
