"""Export EfficientNet-Lite0 to an ONNX file for :mod:`maya.embedding.onnx_runtime`, checked before it is kept.

Run as a program in a child process (``python -m maya.embedding.onnx_export OUT.onnx``) so that the process
that embeds never imports torch: torch takes ~220 MiB of resident memory at import, ONNX Runtime ~35 MiB.
The exported graph is the torch embedder's own net (:func:`maya.embedding.models.load_efficientnet_module`,
BatchNorms folded) from the normalised (N, 3, 224, 224) float32 input to the (N, 1280) pooled features, the
batch size free. Before the file is written (atomically, :mod:`maya.io.atomic`), ONNX Runtime runs it on a
fixed random batch and its output must equal torch's to :data:`MAX_ABS_DIFF`; otherwise nothing is written
and the program exits 1 with the reason on stderr, and the embedder falls back to torch.

Needs ``torch``, ``onnx`` (the exporter writes through it) and ``onnxruntime``. Takes ~4 s on 2 cores.
"""

from __future__ import annotations

import io
import sys
import warnings

#: Largest |torch - onnxruntime| feature difference accepted on the check batch (features are ~0..10).
MAX_ABS_DIFF = 1e-3
OPSET = 17


def export_efficientnet(out_path: str) -> float:
    """Write the checked ONNX file to ``out_path``; returns the check batch's largest difference."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from maya.embedding.efficientnet import load_efficientnet_module
    from maya.io.atomic import atomic_file

    class Pooled(torch.nn.Module):
        def __init__(self, net: torch.nn.Module):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.extract_features(x).mean(dim=(2, 3))

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = Pooled(load_efficientnet_module()).eval()
    example = torch.zeros(2, 3, 224, 224)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding: not for a user
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=OPSET, input_names=["pixels"],
                          output_names=["features"], dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}})
    data = buffer.getvalue()
    check = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 3, 224, 224), dtype=np.float32))
    with torch.inference_mode():
        expected = model(check).numpy()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": check.numpy()})[0]
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not diff <= MAX_ABS_DIFF:
        raise RuntimeError(f"the exported net differs from torch's by {diff:.3g} (limit {MAX_ABS_DIFF})")
    with atomic_file(out_path) as f:
        f.write(data)
    return diff


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m maya.embedding.onnx_export OUT.onnx", file=sys.stderr)
        return 2
    try:
        diff = export_efficientnet(args[0])
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which falls back to torch
        from maya.errors import first_line

        print(f"{type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
        return 1
    print(f"exported {args[0]} (largest difference from torch {diff:.2g})")
    return 0


if __name__ == "__main__":  # pragma: no cover - run by onnx_runtime in a child process
    raise SystemExit(main())
