"""``python -m ttskiln tortoise-generate``: the tortoise_gpt family's command (see ``cli.text_to_codes``)."""

from __future__ import annotations

import argparse
import sys

from ttskiln.families.base import Command, parse_option_pairs


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="autoregressive.pth or a folder holding it")
    parser.add_argument("--tokenizer", required=True, help="Tortoise's tokenizer.json")
    parser.add_argument("--text", required=True, help="text to speak")
    parser.add_argument("--out-dir", required=True, help="folder for text_ids.npy, codes.npy, latents.npy, cond_latent.npy")
    parser.add_argument("--cond-latent", help="conditioning latent .npy [D] (default: a seeded random stand-in)")
    parser.add_argument("--backend", choices=("onnx", "torch"), default="onnx", help="ONNX Runtime (CPU) or PyTorch eager")
    parser.add_argument("--prefill-onnx", help="exported prefill graph (with --decode-onnx; exported on the fly if not given)")
    parser.add_argument("--decode-onnx", help="exported decode graph")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="model option, repeatable (preset=tortoise_v2, unified_voice=...)")
    parser.add_argument("--max-new-tokens", type=int, help="most mel codes to generate (default: the model's maximum)")
    parser.add_argument("--sample", action="store_true", help="sample (default: greedy)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--repetition-penalty", type=float, default=2.0, help="applies when sampling (upstream's 2.0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="CPU threads of the backend")


def _run(args: argparse.Namespace) -> int:
    from ttskiln.errors import TtskilnError
    from ttskiln.families.tortoise_gpt.cli import text_to_codes
    from ttskiln.families.tortoise_gpt.generate import Sampling

    try:
        sampling = Sampling(do_sample=args.sample, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                            repetition_penalty=args.repetition_penalty if args.sample else 1.0, seed=args.seed)
        done = text_to_codes(args.checkpoint, args.tokenizer, args.text, args.out_dir, options=parse_option_pairs(args.option),
                             backend=args.backend, prefill_onnx=args.prefill_onnx, decode_onnx=args.decode_onnx,
                             cond_latent=args.cond_latent, max_new_tokens=args.max_new_tokens, sampling=sampling,
                             seed=args.seed, threads=args.threads)
    except TtskilnError as exc:
        print(f"ttskiln tortoise-generate: error: {exc}", file=sys.stderr)
        return 1
    print(f"ttskiln tortoise-generate: {len(done['text_ids'])} text ids, {done['codes']} mel codes "
          f"({'stopped' if done['stopped'] else 'no stop token'}), latents {done['latents']}, "
          f"conditioning: {done['cond_latent']}, {done['generate_seconds']:.2f} s on {done['backend']} -> {done['out_dir']}")
    return 0


COMMANDS = [
    Command(
        name="tortoise-generate",
        help="text -> Tortoise GPT mel codes and latents (.npy) with the user's tokenizer.json",
        description="Tortoise's text front end, then prefill and cached decode (see ttskiln/families/tortoise_gpt/cli.py).",
        arguments=_arguments,
        run=_run,
    ),
]
