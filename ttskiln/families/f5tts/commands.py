"""``python -m ttskiln synth``: the f5tts family's command (see ``chain.synth_cli``)."""

from __future__ import annotations

import argparse
import sys

from ttskiln.families.base import Command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--f5", required=True, help="F5-TTS checkpoint (folder or weights file with vocab.txt beside it)")
    parser.add_argument("--f5-option", action="append", default=[], metavar="KEY=VALUE",
                       help="F5 model option, repeatable (preset=F5TTS_v1_Base, vocab=..., weights=..., max_frames=3000)")
    parser.add_argument("--vocoder", required=True, help="Vocos checkpoint folder (config.yaml + pytorch_model.bin)")
    parser.add_argument("--backend", choices=("onnx", "torch", "trtllm"), default="onnx",
                       help="ONNX Runtime (CPU), PyTorch eager, or a TensorRT-LLM engine for the DiT (CUDA)")
    parser.add_argument("--trtllm-engine", help="TensorRT-LLM F5 engine folder (trtllm backend; the pipeline's "
                       "artifacts/<model>/trtllm/<tag>/<dtype>/engine)")
    parser.add_argument("--dit-onnx", help="exported dit graph (onnx backend; exported to a temporary folder if not given)")
    parser.add_argument("--vocoder-onnx", help="exported vocoder graph (onnx backend; exported if not given)")
    ref = parser.add_mutually_exclusive_group(required=True)
    ref.add_argument("--ref-audio", help="reference voice: an audio file (WAV/FLAC/OGG, any bit depth, rate and channel "
                     "count; averaged to mono and resampled to the model's rate)")
    ref.add_argument("--ref-mel", help="reference voice as a log-mel .npy [frames, 100]")
    parser.add_argument("--ref-text", required=True, help="what the reference recording says")
    parser.add_argument("--text", action="append", required=True,
                       help="text to speak (Chinese, English or both, any length: long text is split into batches "
                            "as upstream does); repeat for several texts (then OUT_0.wav, OUT_1.wav, ...)")
    parser.add_argument("--cross-fade", type=float, default=0.15,
                       help="seconds of linear cross-fade between a long text's batches (default 0.15)")
    parser.add_argument("--float", action="store_true", help="write 32-bit float WAV instead of 16-bit PCM")
    parser.add_argument("--nfe", type=int, default=32, help="flow steps (default 32)")
    parser.add_argument("--cfg", type=float, default=2.0, help="classifier-free guidance strength (default 2.0)")
    parser.add_argument("--sway", type=float, default=-1.0, help="sway sampling coefficient (default -1.0)")
    parser.add_argument("--duration", type=float,
                       help="total seconds, reference included (upstream's fix_duration); default: estimated from the text lengths")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    parser.add_argument("--threads", type=int, help="CPU threads of the backend (default: the runtime's)")
    parser.add_argument("--out", required=True, help="output WAV path")


def _run(args: argparse.Namespace) -> int:
    from ttskiln.errors import TtskilnError
    from ttskiln.families.f5tts.chain import parse_options, synth_cli

    try:
        synth_cli(
            f5=args.f5, f5_options=parse_options(args.f5_option), vocoder=args.vocoder, backend=args.backend,
            dit_onnx=args.dit_onnx, vocoder_onnx=args.vocoder_onnx, ref_audio=args.ref_audio, ref_mel=args.ref_mel,
            ref_text=args.ref_text, texts=args.text, nfe=args.nfe, cfg_strength=args.cfg, sway=args.sway,
            duration=args.duration, seed=args.seed, out=args.out, threads=args.threads, trtllm_engine=args.trtllm_engine,
            cross_fade_s=args.cross_fade, out_format="FLOAT" if args.float else "PCM_16",
        )
    except TtskilnError as exc:
        print(f"ttskiln synth: error: {exc}", file=sys.stderr)
        return 1
    return 0


COMMANDS = [
    Command(
        name="synth",
        help="text (Chinese, English, mixed) -> 24 kHz WAV with an F5-TTS checkpoint and a Vocos vocoder (ONNX Runtime or PyTorch)",
        description="Synthesise speech in the voice of a reference recording (F5-TTS + Vocos; the "
                    "sampling loop is ttskiln/families/f5tts/synthesis.py, this command synth_command.py).",
        arguments=_arguments,
        run=_run,
    ),
]
