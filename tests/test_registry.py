"""Discovery from real dist-info folders, fault isolation, conflicts, IMGEN_PLUGINS, specs."""

from __future__ import annotations

import itertools
import textwrap
import warnings
from pathlib import Path

import pytest

import imgen
from imgen import Registry
from imgen.errors import (
    BackendConflictError,
    InvalidModelSpecError,
    PluginLoadError,
    UnknownBackendError,
)
from imgen.testing import FakeImageGeneration

_unique = itertools.count()

GOOD = """
import imgen
from imgen.testing.fake import FakeImageGeneration

class {cls}(FakeImageGeneration):
    backend_name = "{name}"

@imgen.hookimpl
def register_backends(register):
    register({cls}, aliases={aliases})
"""


class Site:
    """A folder on sys.path holding plugin distributions as real dist-info folders."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        monkeypatch.syspath_prepend(str(root))

    def plugin(
        self,
        dist: str,
        source: str,
        *,
        version: str = "1.0",
        entry_name: str | None = None,
        root: Path | None = None,
    ) -> str:
        """Write module + dist-info; return the module name."""
        module = f"plug_{dist.replace('-', '_')}_{next(_unique)}"
        where = root or self.root
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{module}.py").write_text(textwrap.dedent(source))
        info = where / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(
            f"[imgen.plugins]\n{entry_name or dist} = {module}\n"
        )
        return module

    def good(self, dist: str, name: str, aliases: dict[str, str] | None = None, **kw: str) -> str:
        cls = f"Backend{next(_unique)}"
        return self.plugin(
            dist, GOOD.format(cls=cls, name=name, aliases=aliases or {}), entry_name=name, **kw
        )

    def registry(self) -> Registry:
        return Registry(path=[str(self.root)])


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.delenv("IMGEN_PLUGINS", raising=False)
    return Site(tmp_path / "site", monkeypatch)


def names(registry: Registry) -> dict[str, str]:
    return {info.name: info.status for info in registry.list_backends()}


def test_good_plugin_resolves_by_name_and_alias(site: Site) -> None:
    site.good("imgen-good", "good", {"good-fast": "good-v2-fast"}, version="2.3.1")
    registry = site.registry()
    cls = registry.get_backend("good")
    assert issubclass(cls, FakeImageGeneration)
    assert registry.get_model("good:org/model:rev").model == "org/model:rev"
    assert registry.get_model("good-fast").model == "good-v2-fast"
    assert registry.get_model("good").model == "fake-v1"
    info = next(i for i in registry.list_backends() if i.name == "good")
    assert (info.distribution, info.version, info.status) == ("imgen-good", "2.3.1", "ok")
    assert info.aliases == {"good-fast": "good-v2-fast"} and info.is_async is False
    assert info.class_path.endswith(cls.__qualname__)


def test_builtin_fake_backends_are_always_there(site: Site) -> None:
    assert names(site.registry()) == {"fake": "ok", "fake-async": "ok"}


BROKEN_CASES = {
    "raises-on-import": ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    "hook-raises": (
        "import imgen\n@imgen.hookimpl\ndef register_backends(register):\n"
        "    raise KeyError('missing config')\n",
        "KeyError",
    ),
    "non-subclass": (
        "import imgen\nclass NotAModel:\n    backend_name = 'x'\n"
        "@imgen.hookimpl\ndef register_backends(register):\n    register(NotAModel)\n",
        "is not an ImageGenerationModel subclass",
    ),
    "no-name": (
        "import imgen\nclass Nameless(imgen.ImageGenerationModel):\n"
        "    model_name = property(lambda self: 'nameless')\n"
        "    def generate(self, inputs, num_generations=1):\n        return []\n"
        "@imgen.hookimpl\ndef register_backends(register):\n    register(Nameless)\n",
        "has no backend_name",
    ),
    "misspelled-hook": (
        "import imgen\n@imgen.hookimpl\ndef register_backend(register):\n    pass\n",
        "unknown hook 'register_backend'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CASES))
def test_a_broken_plugin_is_recorded_and_the_others_keep_working(site: Site, case: str) -> None:
    source, cause = BROKEN_CASES[case]
    site.plugin(f"imgen-{case}", source, version="0.4", entry_name=case)
    site.good("imgen-good", "good")
    registry = site.registry()
    assert registry.get_model("good:x").model == "x"
    assert registry.get_model("fake:y").model == "y"
    info = next(i for i in registry.list_backends() if i.name == case)
    assert info.status == "broken"
    assert (info.distribution, info.version) == (f"imgen-{case}", "0.4")
    assert cause in (info.error or "")
    with pytest.raises(PluginLoadError) as caught:
        registry.get_backend(case)
    assert caught.value.distribution == f"imgen-{case}"
    assert caught.value.version == "0.4"
    assert f"Plugin imgen-{case} 0.4 failed to load" in str(caught.value)
    assert cause in str(caught.value)


def test_a_plugin_that_fails_midway_registers_nothing(site: Site) -> None:
    site.plugin(
        "imgen-half",
        """
        import imgen
        from imgen.testing.fake import FakeImageGeneration
        class First(FakeImageGeneration):
            backend_name = "first"
        @imgen.hookimpl
        def register_backends(register):
            register(First)
            raise RuntimeError("second backend failed")
        """,
        entry_name="half",
    )
    registry = site.registry()
    with pytest.raises(UnknownBackendError):
        registry.get_backend("first")
    assert names(registry)["half"] == "broken"


def test_two_distributions_claiming_one_name_conflict(site: Site) -> None:
    site.good("imgen-alpha", "shared", {"alias-a": "a"})
    site.good("imgen-beta", "shared", {"alias-b": "b"})
    site.good("imgen-gamma", "gamma", {"alias-a": "g"})
    registry = site.registry()
    with pytest.raises(BackendConflictError) as caught:
        registry.get_backend("shared")
    assert caught.value.claimants == ["imgen-alpha", "imgen-beta"]
    assert caught.value.kind == "backend name"
    assert str(caught.value).startswith(
        "Backend name 'shared' is claimed by more than one plugin: imgen-alpha and imgen-beta."
    )
    with pytest.raises(BackendConflictError) as alias_clash:
        registry.get_model("alias-a")
    assert alias_clash.value.kind == "alias"
    assert str(alias_clash.value).startswith(
        "Alias 'alias-a' is claimed by more than one plugin: imgen-alpha (alias for shared:a) "
        "and imgen-gamma (alias for gamma:g). Name the model by its full spec"
    )
    assert "Backend name" not in str(alias_clash.value)
    assert registry.get_model("alias-b").model == "b"
    assert registry.get_model("gamma:x").model == "x"
    statuses = [i.status for i in registry.list_backends() if i.name == "shared"]
    assert statuses == ["conflict", "conflict"]


def test_a_backend_name_that_is_another_plugins_alias_is_a_conflict_saying_so(site: Site) -> None:
    site.good("imgen-sketch", "sketch")
    site.good("imgen-paint", "paint", {"sketch": "sketch-v1"})
    registry = site.registry()
    with pytest.raises(BackendConflictError) as caught:
        registry.get_model("sketch")
    assert caught.value.kind == "backend name and alias"
    assert str(caught.value).startswith(
        "Name 'sketch' is claimed by more than one plugin, as a backend name and as an alias: "
        "imgen-sketch (backend name) and imgen-paint (alias for paint:sketch-v1)."
    )
    listed = next(i for i in registry.list_backends() if i.name == "sketch")
    assert listed.status == "conflict" and listed.error == str(caught.value)
    assert registry.get_model("paint:x").model == "x"


def test_the_same_distribution_twice_on_the_path_is_no_conflict(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.good("imgen-twice", "twice")
    other = tmp_path / "other-site"
    site.good("imgen-twice", "twice", root=other)
    registry = Registry(path=[str(site.root), str(other)])
    assert registry.get_backend("twice").__module__.startswith("plug_imgen_twice")
    assert [i.status for i in registry.list_backends() if i.name == "twice"] == ["ok"]


def test_imgen_plugins_selects_distributions(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.good("imgen-alpha", "alpha")
    site.good("imgen-beta", "beta")
    monkeypatch.setenv("IMGEN_PLUGINS", "imgen_alpha")
    assert names(site.registry()) == {"alpha": "ok", "fake": "ok", "fake-async": "ok"}
    monkeypatch.setenv("IMGEN_PLUGINS", "")
    assert names(site.registry()) == {"fake": "ok", "fake-async": "ok"}
    monkeypatch.setenv("IMGEN_PLUGINS", "imgen-beta, imgen-missing")
    with pytest.warns(UserWarning, match="'imgen-missing'"):
        assert "beta" in names(site.registry())


def test_discovery_is_lazy_and_runs_once(site: Site) -> None:
    registry = site.registry()
    site.good("imgen-late", "late")  # written after construction: still found
    assert registry.get_backend("late")
    site.good("imgen-later", "later")  # written after discovery: not seen again
    with pytest.raises(UnknownBackendError):
        registry.get_backend("later")


def test_unknown_backend_suggests_and_lists(site: Site) -> None:
    site.good("imgen-openia", "opena1")
    with pytest.raises(UnknownBackendError) as caught:
        site.registry().get_model("opena:gpt-image-1")
    message = str(caught.value)
    assert "Unknown backend 'opena'. Did you mean 'opena1'?" in message
    assert "Installed backends: fake, fake-async, opena1." in message
    assert "pip install imgen-opena" in message
    assert isinstance(caught.value, LookupError)


@pytest.mark.parametrize("spec", ["", "   ", ":model", "fake:", ":", None, 42])
def test_malformed_specs(site: Site, spec: object) -> None:
    with pytest.raises(InvalidModelSpecError) as caught:
        site.registry().get_model(spec)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)


def test_spec_and_field_naming_the_model_twice(site: Site) -> None:
    with pytest.raises(InvalidModelSpecError, match="already names the model"):
        site.registry().get_model("fake:a", model="b")


def test_bad_fields_name_the_field(site: Site) -> None:
    with pytest.raises(imgen.errors.InvalidInputError, match="width='wide'"):
        site.registry().get_model("fake:x", width="wide")


def test_in_process_registration_and_its_undo(site: Site) -> None:
    site.good("imgen-taken", "taken")
    registry = site.registry()

    class Notebook(FakeImageGeneration):
        backend_name = "notebook"

    registry.register_backend(Notebook, aliases={"nb": "nb-model"})
    assert registry.get_model("nb").model == "nb-model"
    with pytest.raises(BackendConflictError, match="<in-process> and imgen-taken"):
        registry.register_backend(Notebook, name="taken")
    with pytest.raises(BackendConflictError) as twice:
        registry.register_backend(Notebook, name="nb2", aliases={"nb": "m"})
    assert (
        "Alias 'nb' is claimed by more than one plugin: <in-process> (alias for nb2:m) and "
        "<in-process> (alias for notebook:nb-model)." in str(twice.value)
    )
    registry.unregister_backend("notebook")
    with pytest.raises(UnknownBackendError):
        registry.get_backend("nb")
    with pytest.raises(UnknownBackendError):
        registry.unregister_backend("taken")  # only in-process backends can be removed


def test_module_level_functions_use_the_default_registry() -> None:
    assert imgen.get_backend("fake") is FakeImageGeneration
    assert {"fake", "fake-async"} <= {info.name for info in imgen.list_backends()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert imgen.get_model("fake:x").model == "x"
