"""What resolving a backend by name imports, measured in fresh processes.

`imgen backends`, `imgen.get_model(...)` and every config load discover plugins by importing
their entry points and running their hooks. Whatever a plugin imports while that happens, every
user pays for, whichever backend they use. So the conformance kit resolves the backend by name
in a fresh interpreter and compares the modules loaded with a baseline: a fresh interpreter
that imports imgen and runs discovery with no plugin selected. Anything else, outside the
plugin's own packages, is reported by name, with the module that imported it.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from imgen.registry import PLUGINS_ENV_VAR

__all__ = ["ExtraImports", "extra_imports_on_resolve"]

# Run in the fresh interpreter: records which module first asked for each import, then does
# the work given in argv[1] and prints the modules loaded. Builtin modules cost nothing.
_PROBE = r"""
import sys

importers = {}


class _WhoImports:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in importers:
            frame = sys._getframe(1)
            while frame is not None and (
                frame.f_code.co_filename.startswith("<frozen")
                or frame.f_globals.get("__name__", "").startswith("importlib")
            ):
                frame = frame.f_back
            importers[name] = frame.f_globals.get("__name__") if frame is not None else None
        return None


sys.meta_path.insert(0, _WhoImports)
exec(sys.argv[1])
sys.meta_path.remove(_WhoImports)

import json

loaded = sorted(set(sys.modules) - set(sys.builtin_module_names))
print("\n" + json.dumps({"modules": loaded, "importers": importers}))
"""

_BASELINE = "import imgen\nimgen.list_backends()"


@dataclass(frozen=True)
class ExtraImports:
    """The modules resolving a backend loaded beyond the baseline and the plugin's packages.

    Attributes:
        modules: Every extra module, sorted.
        direct: The top-level packages the plugin (or imgen on its behalf) imported itself,
            each mapped to the module that imported it.
    """

    modules: tuple[str, ...]
    direct: dict[str, str]

    def __bool__(self) -> bool:
        return bool(self.modules)

    def describe(self) -> str:
        """One line per directly imported package, then the count of all extra modules."""
        lines = [f"  {name}  (imported by {by})" for name, by in sorted(self.direct.items())]
        return "\n".join([*lines, f"  ({len(self.modules)} extra modules in all)"])


def _loaded_in_fresh_process(code: str, plugins: str) -> tuple[set[str], dict[str, str | None]]:
    env = dict(os.environ)
    env[PLUGINS_ENV_VAR] = plugins
    # The child sees what this process sees: dist-info folders added to sys.path at run time
    # included.
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, code], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise AssertionError(
            f"A fresh Python process failed to run {code!r}:\n{result.stderr.strip()}"
        )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return set(report["modules"]), report["importers"]


@functools.cache
def _baseline(pythonpath: str) -> frozenset[str]:
    modules, _ = _loaded_in_fresh_process(_BASELINE, plugins="")
    return frozenset(modules)


def extra_imports_on_resolve(
    backend: str,
    distribution: str,
    own_packages: Iterable[str],
    allowed: Iterable[str] = (),
) -> ExtraImports:
    """Resolve `backend` by name in a fresh process and report what it imported beyond imgen.

    Only `distribution` is selected (with `IMGEN_PLUGINS`), so other installed plugins do not
    blur the picture.

    Args:
        backend: The backend name, as passed to `imgen.get_backend`.
        distribution: The plugin distribution that provides it.
        own_packages: The plugin's top-level packages; their modules are expected.
        allowed: More top-level packages not to report.

    Returns:
        The extra modules; empty (and false) when there are none.
    """
    baseline = _baseline(os.pathsep.join(sys.path))
    loaded, importers = _loaded_in_fresh_process(
        f"import imgen\nimgen.get_backend({backend!r})", plugins=distribution
    )
    expected = {*own_packages, *allowed}
    extra = sorted(m for m in loaded - baseline if m.partition(".")[0] not in expected)
    direct: dict[str, str] = {}
    for module in extra:
        importer = importers.get(module) or "?"
        if importer not in extra:  # imported by the plugin or by imgen, not by another extra
            direct.setdefault(module.partition(".")[0], importer)
    return ExtraImports(tuple(extra), direct)
