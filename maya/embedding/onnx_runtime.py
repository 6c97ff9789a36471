"""EfficientNet-Lite0 on the CPU through ONNX Runtime: the default mode's embedder, without torch in the process.

Why: on 2 cores the same net runs ~2x faster in ONNX Runtime than in torch (folded, channels-last), and the
process needs ~35 MiB for the runtime instead of torch's ~220 MiB at import, so a dedup's peak memory is
set by its images, not by the runtime. The vectors are the torch embedder's to float rounding (~1e-6), so
both runtimes share one ``model_id`` and each other's stored embeddings.

When (:func:`wanted`): model ``efficientnet-lite0``, precision auto/fp32, and the device ``cpu``, or not given
on a machine where :func:`maya.embedding.devices.gpu_may_be_present` says no GPU can be there; and
``onnxruntime`` is installed. ``MAYA_RUNTIME=torch`` turns it off (``onnxruntime``: on wherever it can run;
``auto``, the default: as above).

The ONNX file is exported once from the installed weights by a child process
(``python -m maya.embedding.onnx_export``, which checks it against torch before it is kept) into the model
cache (:func:`model_cache_dir`), under a name carrying the weights' sha256 and :data:`EXPORT_VERSION`; later
runs only load it (~0.1 s). A cache that cannot be written gets a private temporary export for the run. A
file that ONNX Runtime refuses, or whose input or output is not the expected shape, is exported again once;
if the export fails, the torch embedder is used and a warning says why.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from maya.embedding.devices import HostDevice, gpu_may_be_present
from maya.embedding.efficientnet import (
    EFFICIENTNET_CPU_BATCH,
    EFFICIENTNET_DIM,
    EFFICIENTNET_NAME,
    EFFICIENTNET_PREPROCESSING,
    efficientnet_weights_path,
)
from maya.embedding.embedder import Embedder
from maya.embedding.preprocessing import ImagePreprocessing
from maya.io.images import sha256_file

log = logging.getLogger(__name__)

RUNTIME_ENV = "MAYA_RUNTIME"
MODEL_CACHE_ENV = "MAYA_MODEL_CACHE"
#: Bump when the exported graph changes for the same weights (what is folded, where the output is taken).
EXPORT_VERSION = "x1"
_EXPORT_TIMEOUT_S = 600
_FP32 = ("auto", "", "fp32", "float32", "float", "full")
#: Passes that run at once: the feature loop has two batches in flight (``maya.dedup.pipeline.Runner.in_flight``),
#: and each runs its own pass with no lock between them, so a pass gets the cores divided by this
#: (:func:`pass_threads`). Measured on 2 cores (one thread a pass against two threads and one pass at a time): a
#: dedup of 2,000 800-px photos 31.6-32.1 s against 34.8 s, of 3,000 2,000-px photos 32.3-33.3 s against
#: 34.1-35.1 s, peak RSS no higher: two threads of one pass spent their time waiting for each other on cores the
#: decode threads were using.
CONCURRENT_PASSES = 2
#: Images per ONNX Runtime pass of more than one thread (a pass of one thread takes one image). On 2 cores its
#: time per image is the same from 1 to 16 images a pass (within noise), while the activations it holds grow with
#: the pass: peak RSS of a session 111-126 MiB at 2, 130-146 at 4, 189 at 8, 276 at 16. The feature batch
#: (``batch_size``: how many images are decoded and stored together) stays larger; :meth:`OnnxEmbedder.embed_tensor`
#: runs it in passes.
PASS_SIZE = 2


def pass_threads() -> int:
    """Intra-op threads of one pass: the cores shared by :data:`CONCURRENT_PASSES` passes, at least one."""
    return max(1, _cores() // CONCURRENT_PASSES)


def wanted(device: str | None, precision: str | None, runtime: str | None = None) -> bool:
    """Whether ``load_embedder("efficientnet-lite0", device=..., precision=..., runtime=...)`` uses ONNX Runtime.

    ``runtime`` None reads ``MAYA_RUNTIME`` (default ``auto``). ValueError for an unknown runtime name.
    """
    where = "runtime" if runtime is not None else RUNTIME_ENV
    choice = (runtime if runtime is not None else os.environ.get(RUNTIME_ENV, "auto")).strip().lower()
    if choice == "torch":
        return False
    if choice not in ("auto", "", "onnxruntime", "onnx"):
        raise ValueError(f"{where}={choice!r}: use auto, torch or onnxruntime")
    if (precision or "auto").strip().lower() not in _FP32:
        return False
    dev = (device or "auto").strip().lower()
    if dev == "auto":
        if choice == "auto" and gpu_may_be_present():
            return False
    elif dev != "cpu":
        return False
    return importlib.util.find_spec("onnxruntime") is not None


def model_cache_dir(env=None) -> Path:
    """Where exported model files are kept: ``MAYA_MODEL_CACHE``, else the platform's cache folder + ``maya/models``."""
    env = os.environ if env is None else env
    if env.get(MODEL_CACHE_ENV):
        return Path(os.path.expanduser(env[MODEL_CACHE_ENV]))
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        base = Path(env["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.path.expanduser(env.get("XDG_CACHE_HOME") or "~/.cache"))
    return base / "maya" / "models"


class OnnxEmbedder(Embedder):
    """An embedder whose net is an ONNX Runtime session on the CPU (fp32): the same interface as the torch ones."""

    runtime = "onnxruntime"

    def __init__(self, session: Any, preprocessing: ImagePreprocessing, *, name: str, model_id_base: str, dim: int,
                 batch_size: int | None = None, source: Path | None = None):
        self._init_common(preprocessing, name=name, model_id_base=model_id_base, dim=dim, device=HostDevice(),
                          precision="fp32", batch_size=batch_size)
        self.session = session
        self.source = source  # the ONNX file the session was made from (None: a temporary export, gone now)
        self._input = session.get_inputs()[0].name
        # a pass of one thread takes one image (its activations); the session says how many threads it runs on
        self.pass_size = 1 if session.get_session_options().intra_op_num_threads == 1 else PASS_SIZE

    def from_uint8(self, pixels: np.ndarray) -> np.ndarray:
        """The pixels as they are: :meth:`embed_tensor` normalises each pass of uint8 pixels with the same arithmetic
        as :meth:`preprocess` (the same floats), and a batch held as uint8 is a quarter of its float32 size."""
        return np.asarray(pixels, dtype=np.uint8)

    def embed_tensor(self, batch: Any) -> np.ndarray:
        """Embed (N, 3, S, S) float32 model input or uint8 pixels: (N, dim) float32 rows of unit L2 norm.

        Run :attr:`pass_size` images at a time, so the activations held never grow with N; passes from other
        threads run at the same time (ONNX Runtime's ``run`` is thread-safe; :data:`CONCURRENT_PASSES`).
        """
        x = np.asarray(batch)
        if len(x) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for start in range(0, len(x), self.pass_size):
            chunk = x[start:start + self.pass_size]
            if chunk.dtype == np.uint8:
                chunk = self.preprocessing.normalize_array(chunk)
            chunk = np.ascontiguousarray(chunk, dtype=np.float32)
            features = self.session.run(None, {self._input: chunk})[0]
            norms = np.linalg.norm(features, axis=1, keepdims=True)
            parts.append((features / np.maximum(norms, 1e-12)).astype(np.float32, copy=False))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def load_efficientnet(*, batch_size: int | None = None) -> OnnxEmbedder | None:
    """EfficientNet-Lite0 in ONNX Runtime, exported into the model cache first if needed; None if that fails."""
    weights = efficientnet_weights_path()
    name = f"{EFFICIENTNET_NAME}-{sha256_file(weights)[:12]}-{EXPORT_VERSION}.onnx"
    try:
        cache = model_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        if not os.access(cache, os.W_OK | os.X_OK) and not (cache / name).is_file():
            raise PermissionError(f"{cache} is not writable")
    except OSError as exc:
        log.info("model cache not usable (%s): exporting %s for this run only", exc, EFFICIENTNET_NAME)
        with tempfile.TemporaryDirectory(prefix="maya-onnx-") as tmp:
            path = Path(tmp) / name
            session = _export(path) and _session(path)
            return _embedder(session, batch_size, None) if session is not None else None
    path = cache / name
    session = _session(path) if path.exists() else None
    if session is None:
        if path.exists() or path.is_symlink():
            log.warning("%s: the cached ONNX file %s could not be used; exporting it again", EFFICIENTNET_NAME, path)
            try:
                path.unlink()
            except OSError:
                pass
        session = _export(path) and _session(path)
    return _embedder(session, batch_size, path) if session is not None else None


def _embedder(session: Any, batch_size: int | None, source: Path | None) -> OnnxEmbedder:
    return OnnxEmbedder(session, EFFICIENTNET_PREPROCESSING, name=EFFICIENTNET_NAME, model_id_base=EFFICIENTNET_NAME,
                        dim=EFFICIENTNET_DIM, batch_size=batch_size or EFFICIENTNET_CPU_BATCH, source=source)


def _export(path: Path) -> bool:
    """Export into ``path`` in a child process; False (and a warning naming the reason) when it fails."""
    import maya

    command = [sys.executable, "-m", "maya.embedding.onnx_export", str(path)]
    # The child imports this very maya (its folder first on the path), and runs in the export's own folder, so
    # a `maya` folder in the user's current directory is never imported in its place.
    here = str(Path(maya.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])}
    log.info("exporting %s to ONNX once: %s", EFFICIENTNET_NAME, path)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_EXPORT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, cwd=str(path.parent), env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("%s: ONNX export could not run (%s); using torch", EFFICIENTNET_NAME, exc)
        return False
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        log.warning("%s: ONNX export failed (%s); using torch", EFFICIENTNET_NAME, reason)
        return False
    return True


def _session(path: Path) -> Any | None:
    """An ONNX Runtime session for ``path`` if it is a regular file holding the expected net, else None."""
    import onnxruntime as ort

    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        options = ort.SessionOptions()
        options.intra_op_num_threads = pass_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its notes on graph rewrites are not for a user
        # Idle intra-op threads sleep instead of spinning, so the decode threads get the cores between passes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is re-exported, not a crash
        log.debug("ONNX file %s refused: %s", path, exc)
        return None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    size = EFFICIENTNET_PREPROCESSING.output_hw
    if (len(inputs) != 1 or len(outputs) != 1 or list(inputs[0].shape[1:]) != [3, *size]
            or outputs[0].shape[-1] != EFFICIENTNET_DIM or inputs[0].type != "tensor(float)"):
        return None
    return session


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
