"""One settings object: command-line flags override env ``MAYA_*``, which override the defaults.

``maya config`` prints the resolved values so a user can see what a run will use.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

DEFAULT_MODEL = "openai/clip-vit-base-patch32"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("maya-data")
    model: str = DEFAULT_MODEL
    device: str | None = None  # None: cuda, then mps, then cpu
    precision: str = "auto"  # auto | fp32 | fp16 | bf16
    batch_size: int | None = None  # None: chosen by device
    max_pixels: int = 178_956_970  # decompression-bomb guard (declared width * height)
    workers: int | None = None  # decode threads; None: one per core

    @property
    def db_path(self) -> Path:
        return self.data_dir / "maya.duckdb"

    @property
    def images_dir(self) -> Path:
        """Where derived (generated) images are stored, content-addressed."""
        return self.data_dir / "images"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir)
        d["db_path"] = str(self.db_path)
        return d


def _from_env(env) -> dict:
    out: dict = {}
    for f in fields(Settings):
        raw = env.get(f"MAYA_{f.name.upper()}")
        if raw is None or raw == "":
            continue
        if f.name == "data_dir":
            out[f.name] = Path(raw)
        elif f.name in ("batch_size", "max_pixels", "workers"):
            try:
                out[f.name] = int(raw)
            except ValueError:
                raise ValueError(f"MAYA_{f.name.upper()} must be an integer, got {raw!r}") from None
        else:
            out[f.name] = raw
    return out


def load_settings(env=None, **overrides) -> Settings:
    """Defaults <- env ``MAYA_*`` <- explicit overrides (``None`` overrides are ignored)."""
    env = os.environ if env is None else env
    values = _from_env(env)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "data_dir" in values:
        values["data_dir"] = Path(values["data_dir"])
    s = replace(Settings(), **values)
    if s.batch_size is not None and s.batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {s.batch_size}")
    if s.precision not in ("auto", "fp32", "fp16", "bf16"):
        raise ValueError(f"precision must be one of auto, fp32, fp16, bf16; got {s.precision!r}")
    return s
