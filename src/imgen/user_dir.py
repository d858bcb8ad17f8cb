"""The user dir: where imgen keeps its settings, stored keys and log database.

Settings and keys go to the platform's user config folder, the log database to its user data
folder (both found by platformdirs: `~/.config/imgen` and `~/.local/share/imgen` on Linux,
`~/Library/Application Support/imgen` on macOS, `%LOCALAPPDATA%\\imgen` on Windows). The
environment variable `IMGEN_USER_DIR` moves all of them into one folder of your choice.

platformdirs is imported on first use, never by `import imgen`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgen.errors import ConfigurationError, raise_unchained
from imgen.images import write_atomically

__all__ = [
    "USER_DIR_ENV_VAR",
    "UserDirWarning",
    "UserFiles",
    "how_to_move",
    "read_json_object",
    "user_files",
    "write_json_object",
]

USER_DIR_ENV_VAR = "IMGEN_USER_DIR"
"""The environment variable that moves every user file into one folder."""

_APP_NAME = "imgen"
# Only its owner may list the folder that holds the keys.
_PRIVATE_FOLDER_MODE = 0o700


class UserDirWarning(UserWarning):
    """Something in the user dir needs attention, but the command can go on."""


@dataclass(frozen=True)
class UserFiles:
    """Where each user file lives.

    Attributes:
        config: The settings (`config.json`): default model, logging on or off.
        keys: The stored API keys (`keys.json`, mode 0600).
        logs: The SQLite log of every generation (`logs.db`).
        source: `IMGEN_USER_DIR` when that variable placed them, else `platformdirs`.
    """

    config: Path
    keys: Path
    logs: Path
    source: str

    def as_dict(self) -> dict[str, Path]:
        """Each file by name: config, keys, logs."""
        return {"config": self.config, "keys": self.keys, "logs": self.logs}


def user_files() -> UserFiles:
    """The user files, from `IMGEN_USER_DIR` when set, else the platform's user dirs."""
    relocated = os.environ.get(USER_DIR_ENV_VAR, "").strip()
    if relocated:
        root = Path(relocated).expanduser().absolute()
        return UserFiles(
            root / "config.json", root / "keys.json", root / "logs.db", USER_DIR_ENV_VAR
        )
    import platformdirs

    config_dir = Path(platformdirs.user_config_dir(_APP_NAME, appauthor=False))
    data_dir = Path(platformdirs.user_data_dir(_APP_NAME, appauthor=False))
    return UserFiles(
        config_dir / "config.json", config_dir / "keys.json", data_dir / "logs.db", "platformdirs"
    )


def how_to_move(path: Path) -> str:
    """The advice that ends every error about a user file: how to start afresh without it."""
    return (
        f"Fix it, or move it aside (`mv {path} {path}.bak`) and imgen starts a new one; "
        f"{USER_DIR_ENV_VAR} can point imgen to another folder."
    )


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object stored in `path`; `{}` when the file does not exist.

    Args:
        path: The file.
        what: What the file is, for messages: "settings file", "keys file".

    Raises:
        ConfigurationError: The file cannot be read, or does not hold a JSON object. The
            message names the file and how to fix or move it; it never quotes the content,
            which may be a secret.
    """
    try:
        content = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # a user dir that was never made
        return {}
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the imgen {what} {path}: {exc.strerror}. {how_to_move(path)}"
        ) from None
    problem = None
    try:
        data = json.loads(content.decode("utf-8"))
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except RecursionError:
        problem = "is nested too deeply"
    except json.JSONDecodeError as exc:
        # Only the position: the content may be a secret.
        problem = f"is not valid JSON (line {exc.lineno}, column {exc.colno})"
    if problem is not None:
        # Unchained: the decoder's error holds the whole content (`.doc`, `.object`), which
        # for the keys file is every stored key.
        raise_unchained(
            ConfigurationError(f"The imgen {what} {path} {problem}. {how_to_move(path)}")
        )
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"The imgen {what} {path} must hold a JSON object, not a {type(data).__name__}. "
            f"{how_to_move(path)}"
        )
    return data


def write_json_object(path: Path, data: dict[str, Any], what: str, *, private: bool) -> None:
    """Replace `path` with `data` as JSON, atomically: a crash leaves the old file or the new.

    Args:
        path: The file.
        data: Its new content.
        what: What the file is, for messages.
        private: Create the file with mode 0600 (its folder 0700 when new): only its owner
            can read it, from the first byte on.

    Raises:
        ConfigurationError: The folder or the file cannot be written (read-only, no space).
    """
    content = (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=_PRIVATE_FOLDER_MODE)
        write_atomically(path, content, mode=0o600 if private else 0o666)
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot write the imgen {what} {path}: {exc.strerror}. Make its folder writable, "
            f"or set {USER_DIR_ENV_VAR} to a writable folder."
        ) from None
