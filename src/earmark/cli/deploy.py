"""The ``export-model`` command (argparse only): a model version for other engines."""

from __future__ import annotations

import argparse

from earmark.cli.common import PROJECT_HELP, add_command, open_checked


def cmd_export_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from earmark.models.export import export_model

    r = export_model(open_checked(args.project), args.model, args.format, Path(args.out),
                     args.quantization or "")
    kind = (f"a CTranslate2 model ({r.quantization or 'float32'}) for faster-whisper"
            if r.format == "ct2" else "a transformers Whisper model")
    print(f"exported {r.version} as {kind} to {r.out} "
          f"(alignment heads {', '.join(f'{l}:{h}' for l, h in r.alignment_heads)})")
    if r.format == "ct2":
        print(f"load it with: faster_whisper.WhisperModel({str(r.out)!r})")
    else:
        print(f"load it with: transformers.pipeline('automatic-speech-recognition', model={str(r.out)!r})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``export-model``."""
    from earmark.models.export import FORMATS, QUANTIZATIONS

    s = add_command(
        sub, "export-model", cmd_export_model,
        help="write a model version for faster-whisper (ct2) or transformers (hf)",
        description="Write a model version (default: the active one) as a Hugging Face "
                    "transformers Whisper folder (weights, tokenizer, feature extractor and "
                    "generation config) or as a CTranslate2 model that faster-whisper loads. "
                    "Everything is built offline; the version's alignment heads are carried "
                    "over, so word timestamps stay right. Needs `pip install 'earmark[export]'`.",
        epilog="examples:\n  earmark export-model myproj --format ct2 --quantization int8 --out fw-model\n"
               "  earmark export-model myproj --model ft-002 --format hf --out hf-model")
    s.add_argument("project", help=PROJECT_HELP)
    s.add_argument("--model", help="a version's name (`earmark models` lists them); default the active one")
    s.add_argument("--format", required=True, choices=FORMATS, help="ct2 (faster-whisper) or hf (transformers)")
    s.add_argument("--quantization", choices=QUANTIZATIONS,
                   help="CTranslate2 weight type for --format ct2 (default: float32, as trained)")
    s.add_argument("--out", required=True, help="a new or empty folder")
