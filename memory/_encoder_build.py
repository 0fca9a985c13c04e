"""``python -m memory._encoder_build MODEL_DIR``: the local model's int8 query encoder, written
and quantized from the weights in MODEL_DIR, as ONNX bytes on standard output (ADR 0048).

Run by ``memory._quantized.build`` in a process of its own: the quantizer works in Python for
seconds and takes some 300 MB at its peak, none of which the serving process should carry.
"""

from __future__ import annotations

import sys
from pathlib import Path

from memory._embed import EmbedderError, _Model
from memory._quantized import Weights, quantized


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m memory._encoder_build MODEL_DIR", file=sys.stderr)
        return 2
    try:
        model = _Model(Path(argv[0]), 512)
    except EmbedderError as exc:
        print(exc, file=sys.stderr)
        return 1
    weights = Weights(model.words, model.positions, model.norm, model.layers, model.heads, model.eps)
    sys.stdout.buffer.write(quantized(weights))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
