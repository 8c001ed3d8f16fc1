"""``python -m ttskiln tts``: the vits family's command (see ``tts.text_to_wav``)."""

from __future__ import annotations

import argparse
import sys

from ttskiln.families.base import Command, parse_option_pairs


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="checkpoint folder (model_file.pth, config.json, ...)")
    parser.add_argument("--text", required=True, help="text to speak")
    parser.add_argument("--language", help="language name from language_ids.json (models with a language embedding)")
    voice = parser.add_mutually_exclusive_group()
    voice.add_argument("--speaker", help="speaker name (speakers.json d-vectors, or speakers.pth ids)")
    voice.add_argument("--speaker-wav", help="reference voice through the speaker encoder: an audio file of any rate, bit depth or channel count "
                       "(resampled to the encoder's rate)")
    parser.add_argument("--backend", choices=("onnx", "torch"), default="onnx", help="ONNX Runtime (CPU) or PyTorch eager")
    parser.add_argument("--onnx-dir", help="folder with the exported graphs (<component>.onnx); exported on the fly if not given")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="model option, repeatable")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    parser.add_argument("--threads", type=int, help="CPU threads of the backend")
    parser.add_argument("--out", required=True, help="output WAV path")


def _run(args: argparse.Namespace) -> int:
    from ttskiln.errors import TtskilnError
    from ttskiln.families.vits.tts import text_to_wav

    try:
        done = text_to_wav(args.model_dir, args.text, args.out, language=args.language, speaker=args.speaker,
                           speaker_wav=args.speaker_wav, backend=args.backend, onnx_dir=args.onnx_dir,
                           options=parse_option_pairs(args.option), seed=args.seed, threads=args.threads)
    except TtskilnError as exc:
        print(f"ttskiln tts: error: {exc}", file=sys.stderr)
        return 1
    if done["dropped"]:
        print(f"ttskiln tts: characters not in the model's vocabulary, dropped: {''.join(done['dropped'])!r}")
    print(f"ttskiln tts: {len(done['ids'])} ids, language {done['language']}, speaker {done['speaker']}, "
          f"{done['audio_seconds']:.2f} s of audio (RTF {done['rtf']:.3f} on {done['backend']}) -> {done['out']}")
    return 0


COMMANDS = [
    Command(
        name="tts",
        help="text -> WAV with a Coqui VITS / YourTTS checkpoint folder (ONNX Runtime or PyTorch)",
        description="Speak a text with a VITS / YourTTS model: the checkpoint's own text front end, language and "
                    "speaker (see ttskiln/families/vits/tts.py).",
        arguments=_arguments,
        run=_run,
    ),
]
