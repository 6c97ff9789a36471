"""One settings object: command-line flags override env ``MAYA_*``, which override the user config file,
which overrides the defaults.

The user config file is TOML with the field names of :class:`Settings` as keys (``model =
"efficientnet-lite0"``, ``data_dir = "~/maya-data"``). It lives in the platform's config folder
(:func:`config_path`): ``$XDG_CONFIG_HOME/maya/config.toml`` (default ``~/.config``) on Linux,
``~/Library/Application Support/maya/config.toml`` on macOS, ``%APPDATA%\\maya\\config.toml`` on
Windows; ``MAYA_CONFIG`` names another file. ``maya config`` prints the resolved values, where each came
from, and which file was read; ``maya config --set KEY=VALUE`` writes the file.

Paths (``data_dir``, anywhere) expand a leading ``~``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from maya.errors import MayaUsageError

DEFAULT_MODEL = "openai/clip-vit-base-patch32"

_INT_FIELDS = ("batch_size", "max_pixels", "workers")


class ConfigError(MayaUsageError, ValueError):
    """The user config file (or a ``--set``) cannot be used: the message names the file and the key."""


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


SETTING_NAMES = tuple(f.name for f in fields(Settings))


def expand_path(p: str | os.PathLike) -> Path:
    """``p`` as a Path with a leading ``~`` / ``~user`` expanded (nothing else: no variables, no resolve)."""
    return Path(os.path.expanduser(os.fspath(p)))


def config_path(env=None) -> Path:
    """The user config file: ``MAYA_CONFIG``, else ``config.toml`` in the platform's config folder."""
    env = os.environ if env is None else env
    if env.get("MAYA_CONFIG"):
        return expand_path(env["MAYA_CONFIG"])
    if sys.platform == "win32" and env.get("APPDATA"):
        base = Path(env["APPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = expand_path(env.get("XDG_CONFIG_HOME") or "~/.config")
    return base / "maya" / "config.toml"


def _toml_loads(text: str) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def _coerce(name: str, raw, where: str):
    """A setting's value from text (env, ``--set``) or TOML, checked; ConfigError naming ``where``."""
    if name not in SETTING_NAMES:
        raise ConfigError(f"{where}: unknown setting {name!r}; known: {', '.join(SETTING_NAMES)}")
    if name == "data_dir":
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{where}: data_dir must be a folder path, got {raw!r}")
        return expand_path(raw)
    if name in _INT_FIELDS:
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: {name} must be an integer, got {raw!r}")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {name} must be an integer, got {raw!r}") from None
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: {name} must be a string, got {raw!r}")
    return raw


def read_config(path: Path | None = None) -> dict:
    """The settings in the user config file (empty when it does not exist), values checked."""
    path = config_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"cannot read the config file {path}: {e.strerror or e}") from None
    try:
        data = _toml_loads(text)
    except Exception as e:  # tomllib.TOMLDecodeError
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    return {k: _coerce(k, v, f"config file {path}") for k, v in data.items()}


def write_config(values: dict, path: Path | None = None) -> Path:
    """Write ``values`` (setting name -> value; None removes the key) into the config file, keeping its
    other keys; returns the file's path."""
    from maya.io.atomic import write_atomically

    path = config_path() if path is None else path
    current = {k: (str(v) if isinstance(v, Path) else v) for k, v in read_config(path).items()}
    for k, v in values.items():
        if v is None:
            current.pop(k, None)
        else:
            _coerce(k, v, "--set")
            current[k] = int(v) if k in _INT_FIELDS else str(v)
    lines = ["# Maya's user settings (maya config --set KEY=VALUE); flags and MAYA_* env override them"]
    for k, v in current.items():
        lines.append(f"{k} = {v}" if isinstance(v, int) else f'{k} = "{_toml_escape(v)}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def _toml_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def _from_env(env) -> dict:
    out: dict = {}
    for name in SETTING_NAMES:
        raw = env.get(f"MAYA_{name.upper()}")
        if raw is None or raw == "":
            continue
        try:
            out[name] = _coerce(name, raw, f"MAYA_{name.upper()}")
        except ConfigError:
            raise ConfigError(f"MAYA_{name.upper()} must be an integer, got {raw!r}") from None
    return out


def resolve_settings(env=None, **overrides) -> tuple[Settings, dict[str, str]]:
    """The settings and, per setting, where its value came from: ``flag``, ``env MAYA_X``, ``config file``
    or ``default``."""
    env = os.environ if env is None else env
    sources = {name: "default" for name in SETTING_NAMES}
    values = read_config(config_path(env))
    sources.update({k: "config file" for k in values})
    from_env = _from_env(env)
    values.update(from_env)
    sources.update({k: f"env MAYA_{k.upper()}" for k in from_env})
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    sources.update({k: "flag" for k in given})
    if "data_dir" in values:
        values["data_dir"] = expand_path(values["data_dir"])
    s = replace(Settings(), **values)
    if s.batch_size is not None and s.batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {s.batch_size}")
    if s.precision not in ("auto", "fp32", "fp16", "bf16"):
        raise ValueError(f"precision must be one of auto, fp32, fp16, bf16; got {s.precision!r}")
    return s, sources


def load_settings(env=None, **overrides) -> Settings:
    """Defaults <- user config file <- env ``MAYA_*`` <- explicit overrides (``None`` overrides are ignored)."""
    return resolve_settings(env, **overrides)[0]
