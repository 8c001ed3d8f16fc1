"""Command line: ``python -m ttskiln <command>``."""

from __future__ import annotations

import argparse
import sys


def _synth_parser(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser(
        "synth",
        help="text (Chinese, English, mixed) -> 24 kHz WAV with an F5-TTS checkpoint and a Vocos vocoder (ONNX Runtime or PyTorch)",
        description="Synthesise speech in the voice of a reference recording (F5-TTS + Vocos; see "
                    "ttskiln/families/f5tts/chain.py).",
    )
    synth.add_argument("--f5", required=True, help="F5-TTS checkpoint (folder or weights file with vocab.txt beside it)")
    synth.add_argument("--f5-option", action="append", default=[], metavar="KEY=VALUE",
                       help="F5 model option, repeatable (preset=F5TTS_v1_Base, vocab=..., weights=..., max_frames=3000)")
    synth.add_argument("--vocoder", required=True, help="Vocos checkpoint folder (config.yaml + pytorch_model.bin)")
    synth.add_argument("--backend", choices=("onnx", "torch", "trtllm"), default="onnx",
                       help="ONNX Runtime (CPU), PyTorch eager, or a TensorRT-LLM engine for the DiT (CUDA)")
    synth.add_argument("--trtllm-engine", help="TensorRT-LLM F5 engine folder (trtllm backend; the pipeline's "
                       "artifacts/<model>/trtllm/<tag>/<dtype>/engine)")
    synth.add_argument("--dit-onnx", help="exported dit graph (onnx backend; exported to a temporary folder if not given)")
    synth.add_argument("--vocoder-onnx", help="exported vocoder graph (onnx backend; exported if not given)")
    ref = synth.add_mutually_exclusive_group(required=True)
    ref.add_argument("--ref-audio", help="reference voice: an audio file (WAV/FLAC/OGG, any bit depth, rate and channel "
                     "count; averaged to mono and resampled to the model's rate)")
    ref.add_argument("--ref-mel", help="reference voice as a log-mel .npy [frames, 100]")
    synth.add_argument("--ref-text", required=True, help="what the reference recording says")
    synth.add_argument("--text", action="append", required=True,
                       help="text to speak (Chinese, English or both, any length: long text is split into batches "
                            "as upstream does); repeat for several texts (then OUT_0.wav, OUT_1.wav, ...)")
    synth.add_argument("--cross-fade", type=float, default=0.15,
                       help="seconds of linear cross-fade between a long text's batches (default 0.15)")
    synth.add_argument("--float", action="store_true", help="write 32-bit float WAV instead of 16-bit PCM")
    synth.add_argument("--nfe", type=int, default=32, help="flow steps (default 32)")
    synth.add_argument("--cfg", type=float, default=2.0, help="classifier-free guidance strength (default 2.0)")
    synth.add_argument("--sway", type=float, default=-1.0, help="sway sampling coefficient (default -1.0)")
    synth.add_argument("--duration", type=float,
                       help="total seconds, reference included (upstream's fix_duration); default: estimated from the text lengths")
    synth.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    synth.add_argument("--threads", type=int, help="CPU threads of the backend (default: the runtime's)")
    synth.add_argument("--out", required=True, help="output WAV path")


def _text_parsers(sub: argparse._SubParsersAction) -> None:
    tts = sub.add_parser(
        "tts", help="text -> WAV with a Coqui VITS / YourTTS checkpoint folder (ONNX Runtime or PyTorch)",
        description="Speak a text with a VITS / YourTTS model: the checkpoint's own text front end, language and "
                    "speaker (see ttskiln/families/vits/tts.py).")
    tts.add_argument("--model-dir", required=True, help="checkpoint folder (model_file.pth, config.json, ...)")
    tts.add_argument("--text", required=True, help="text to speak")
    tts.add_argument("--language", help="language name from language_ids.json (models with a language embedding)")
    voice = tts.add_mutually_exclusive_group()
    voice.add_argument("--speaker", help="speaker name (speakers.json d-vectors, or speakers.pth ids)")
    voice.add_argument("--speaker-wav", help="reference voice through the speaker encoder: an audio file of any rate, bit depth or channel count "
                       "(resampled to the encoder's rate)")
    tts.add_argument("--backend", choices=("onnx", "torch"), default="onnx", help="ONNX Runtime (CPU) or PyTorch eager")
    tts.add_argument("--onnx-dir", help="folder with the exported graphs (<component>.onnx); exported on the fly if not given")
    tts.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="model option, repeatable")
    tts.add_argument("--seed", type=int, default=0, help="seed of the noise")
    tts.add_argument("--threads", type=int, help="CPU threads of the backend")
    tts.add_argument("--out", required=True, help="output WAV path")

    tg = sub.add_parser(
        "tortoise-generate", help="text -> Tortoise GPT mel codes and latents (.npy) with the user's tokenizer.json",
        description="Tortoise's text front end, then prefill and cached decode (see ttskiln/families/tortoise_gpt/cli.py).")
    tg.add_argument("--checkpoint", required=True, help="autoregressive.pth or a folder holding it")
    tg.add_argument("--tokenizer", required=True, help="Tortoise's tokenizer.json")
    tg.add_argument("--text", required=True, help="text to speak")
    tg.add_argument("--out-dir", required=True, help="folder for text_ids.npy, codes.npy, latents.npy, cond_latent.npy")
    tg.add_argument("--cond-latent", help="conditioning latent .npy [D] (default: a seeded random stand-in)")
    tg.add_argument("--backend", choices=("onnx", "torch"), default="onnx", help="ONNX Runtime (CPU) or PyTorch eager")
    tg.add_argument("--prefill-onnx", help="exported prefill graph (with --decode-onnx; exported on the fly if not given)")
    tg.add_argument("--decode-onnx", help="exported decode graph")
    tg.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="model option, repeatable (preset=tortoise_v2, unified_voice=...)")
    tg.add_argument("--max-new-tokens", type=int, help="most mel codes to generate (default: the model's maximum)")
    tg.add_argument("--sample", action="store_true", help="sample (default: greedy)")
    tg.add_argument("--temperature", type=float, default=0.8)
    tg.add_argument("--top-p", type=float, default=0.8)
    tg.add_argument("--top-k", type=int, default=0)
    tg.add_argument("--repetition-penalty", type=float, default=2.0, help="applies when sampling (upstream's 2.0)")
    tg.add_argument("--seed", type=int, default=0)
    tg.add_argument("--threads", type=int, help="CPU threads of the backend")


def _options(pairs: list[str]) -> dict:
    import yaml

    from ttskiln.errors import ConfigError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option takes key=value, got {pair!r}")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _run_text_command(args: argparse.Namespace) -> int:
    from ttskiln.errors import TtskilnError

    try:
        if args.command == "tts":
            from ttskiln.families.vits.tts import text_to_wav

            done = text_to_wav(args.model_dir, args.text, args.out, language=args.language, speaker=args.speaker,
                               speaker_wav=args.speaker_wav, backend=args.backend, onnx_dir=args.onnx_dir,
                               options=_options(args.option), seed=args.seed, threads=args.threads)
            if done["dropped"]:
                print(f"ttskiln tts: characters not in the model's vocabulary, dropped: {''.join(done['dropped'])!r}")
            print(f"ttskiln tts: {len(done['ids'])} ids, language {done['language']}, speaker {done['speaker']}, "
                  f"{done['audio_seconds']:.2f} s of audio (RTF {done['rtf']:.3f} on {done['backend']}) -> {done['out']}")
        else:
            from ttskiln.families.tortoise_gpt.cli import text_to_codes
            from ttskiln.families.tortoise_gpt.generate import Sampling

            sampling = Sampling(do_sample=args.sample, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                repetition_penalty=args.repetition_penalty if args.sample else 1.0, seed=args.seed)
            done = text_to_codes(args.checkpoint, args.tokenizer, args.text, args.out_dir, options=_options(args.option),
                                 backend=args.backend, prefill_onnx=args.prefill_onnx, decode_onnx=args.decode_onnx,
                                 cond_latent=args.cond_latent, max_new_tokens=args.max_new_tokens, sampling=sampling,
                                 seed=args.seed, threads=args.threads)
            print(f"ttskiln tortoise-generate: {len(done['text_ids'])} text ids, {done['codes']} mel codes "
                  f"({'stopped' if done['stopped'] else 'no stop token'}), latents {done['latents']}, "
                  f"conditioning: {done['cond_latent']}, {done['generate_seconds']:.2f} s on {done['backend']} -> {done['out_dir']}")
    except TtskilnError as exc:
        print(f"ttskiln {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ttskiln", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    parity = sub.add_parser("parity", help="reproduce upstream outputs recorded in a case folder")
    parity.add_argument("case_dir", help="folder with manifest.json, the checkpoint, inputs.npz, outputs.npz "
                        "(or a text front-end folder: manifest kind 'frontend')")
    _synth_parser(sub)
    _text_parsers(sub)
    check = sub.add_parser("check-config", help="check YAML config files as the workflow would, naming file, line and column")
    check.add_argument("configs", nargs="+", help="config files, later ones overriding earlier ones (like --configfile)")
    sub.add_parser("doctor", help="what this machine offers (CUDA, TensorRT, TensorRT-LLM, ONNX Runtime providers) and which stages run")
    conformance = sub.add_parser(
        "conformance", help="every family x variant (fp32, fp16, int8) x component on its tiny preset: loads, runs, validates")
    conformance.add_argument("families", nargs="*", help="families to check (default: all in the registry)")
    conformance.add_argument("--workdir", help="where to build (default: a temporary folder, removed after)")
    compare = sub.add_parser(
        "compare", help="compare two reports' summary.json: latency and accuracy per row, regressions beyond noise",
        description="Rows are matched by model, component, variant, backend and point. A row regresses when the 95 % "
                    "bootstrap interval of its median-latency ratio (new / old) lies wholly above 1 + threshold, or "
                    "its validation went from pass to fail. Exits 1 when any row regressed.")
    compare.add_argument("old", help="the earlier summary.json (e.g. one under reports/history/)")
    compare.add_argument("new", help="the later summary.json")
    compare.add_argument("--threshold", type=float, default=0.05,
                         help="slowdown tolerated beyond noise, as a fraction (default 0.05: 5 %%)")
    args = parser.parse_args(argv)
    if args.command == "compare":
        from ttskiln.history import main as compare_main

        return compare_main(args.old, args.new, args.threshold)
    if args.command in ("tts", "tortoise-generate"):
        return _run_text_command(args)
    if args.command == "conformance":
        from ttskiln.conformance import main as conformance_main

        return conformance_main(args.families, args.workdir)
    if args.command == "check-config":
        from pathlib import Path

        from ttskiln.config_check import check_config, load_config_file
        from ttskiln.errors import TtskilnError
        from ttskiln.plan import build_plan

        try:
            config: dict = {}
            for path in args.configs:
                config.update(load_config_file(path))
            check_config(config, sources=args.configs)
            plan = build_plan(config, Path.cwd())
        except TtskilnError as exc:
            print(f"ttskiln: {exc}", file=sys.stderr)
            return 1
        print(f"ttskiln: {len(plan.models)} model(s) planned: {', '.join(plan.models)}")
        return 0
    if args.command == "doctor":
        from ttskiln.doctor import main as doctor_main

        return doctor_main()
    if args.command == "parity":
        from ttskiln.parity import main as parity_main

        return parity_main(args.case_dir)
    if args.command == "synth":
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
    return 2


if __name__ == "__main__":
    sys.exit(main())
