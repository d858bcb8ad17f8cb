"""The `imgen` command: list backends, describe one, generate images.

A thin layer over the public API. `imgen --help` and `imgen backends` import no SDK and no
Pillow: backends load their SDK in `load()`, and the images are only decoded when written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import re
import sys
import threading
import time
import types
import typing
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import click
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

import imgen
from imgen.cli_complete import complete_backend, complete_model
from imgen.cli_logs import logged, logs
from imgen.cli_options import (
    FIELDS_OPTION,
    GENERATION_KWARGS_OPTION,
    NUM_GENERATIONS_OPTION,
    ImgenGroup,
    UserError,
    build_model,
    set_debug,
)
from imgen.cli_stdin import expand_stdin_prompts
from imgen.cli_user import choose_generate_model, keys, paths, plain_warnings
from imgen.command_log import current_log
from imgen.docstrings import parse_google_docstring
from imgen.errors import GenerationError, InvalidInputError, InvalidOutputError, brief_repr
from imgen.known_models import KnownModels, known_models
from imgen.outputs import image_metadata
from imgen.quiet import quiet_libraries
from imgen.registry import IN_PROCESS
from imgen.runtime_parameters import (
    env_default_of,
    env_var_of,
    is_runtime_parameter,
    is_secret_field,
)

__all__ = ["main"]

_SLUG_LENGTH = 60


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"imgen {imgen.__version__}")
    plugins: dict[tuple[str, str], list[str]] = {}
    for info in imgen.list_backends():
        if info.distribution not in ("imgen", IN_PROCESS):
            plugins.setdefault((info.distribution, info.version), []).append(info.name)
    for (distribution, version), names in sorted(plugins.items()):
        click.echo(f"{distribution} {version} ({', '.join(names)})")
    ctx.exit()


@click.group(
    cls=ImgenGroup,
    lazy_commands={"batch": "imgen.batch.command:batch", "models": "imgen.cli_models:models"},
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the versions of imgen and its plugins, and exit.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="IMGEN_DEBUG",
    help="Show the traceback of errors, and the warnings, logs and progress bars of the "
    "libraries backends use (also IMGEN_DEBUG=1).",
)
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Generate images with any installed imgen backend."""
    set_debug(ctx, debug)
    ctx.with_resource(plain_warnings())
    if not debug:
        ctx.with_resource(quiet_libraries())


for _command in (keys, logs, paths):
    main.add_command(_command)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _echo_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())


# -- imgen backends ------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def backends(as_json: bool) -> None:
    """List the installed backends, broken and conflicting ones included."""
    infos = imgen.list_backends()
    if as_json:
        _echo_json([dataclasses.asdict(info) for info in infos])
        return
    rows = []
    for info in infos:
        mode = {True: "async", False: "sync", None: "-"}[info.is_async]
        status = info.status if info.error is None else f"{info.status}: {info.error}"
        plugin = f"{info.distribution} {info.version}".strip()
        rows.append(
            (info.name, plugin, mode, ", ".join(info.aliases) or "-", " ".join(status.split()))
        )
    _echo_table(("NAME", "PLUGIN", "MODE", "ALIASES", "STATUS"), rows)


# -- imgen info ----------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    """A short, readable name for a type: `int | None`, `Literal['png', 'jpeg']`."""
    if isinstance(annotation, str):  # an annotation that could not be resolved
        return annotation
    if annotation is type(None):
        return "None"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is not None:
        return f"{_type_name(origin)}[{', '.join(_type_name(arg) for arg in args)}]"
    return str(getattr(annotation, "__name__", annotation))


def _introspection_instance(cls: type[imgen.ImageGenerationModel]) -> imgen.ImageGenerationModel:
    """An instance to ask for its runtime parameters: built from defaults when possible."""
    try:
        return cls()
    except Exception:
        # Some backends require fields; an unvalidated instance still lists its parameters.
        required = {name: None for name, field in cls.model_fields.items() if field.is_required()}
        return cls.model_construct(**required)


def _describe_field(name: str, field: FieldInfo, description: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "type": _type_name(field.annotation),
        "required": field.is_required(),
        "secret": is_secret_field(field),
        "runtime_parameter": is_runtime_parameter(field),
        "description": description,
    }
    env_var = env_var_of(field)
    if env_var:
        entry["env_var"] = env_var  # its value is never read here, secret or not
        if (fallback := env_default_of(field)) is not None and not entry["secret"]:
            entry["default"] = fallback
    elif not field.is_required() and not entry["secret"]:
        default = field.get_default(call_default_factory=True, validated_data={})
        entry["default"] = to_jsonable_python(default, fallback=repr)
    return entry


def _flatten_runtime_parameters(
    info: list[dict[str, Any]], prefix: str = ""
) -> Iterator[dict[str, Any]]:
    for entry in info:
        name = prefix + entry["name"]
        if "runtime_parameters_info" in entry:
            yield from _flatten_runtime_parameters(entry["runtime_parameters_info"], name + ".")
        elif "keys" not in entry:  # generation_kwargs: its keys have their own section
            yield {**entry, "name": name}


def _describe_generation_kwargs(model: imgen.ImageGenerationModel) -> list[dict[str, Any]]:
    method = (
        model.agenerate if isinstance(model, imgen.AsyncImageGenerationModel) else model.generate
    )
    try:
        signature = inspect.signature(method, eval_str=True)
    except Exception:  # a name only imported under TYPE_CHECKING: show the annotation text
        signature = inspect.signature(method)
    info = model.get_runtime_parameters_info()
    keys: list[dict[str, Any]] = next((e["keys"] for e in info if "keys" in e), [])
    described = []
    for key in keys:
        param = signature.parameters[key["name"]]
        entry = {
            **key,
            "type": "" if param.annotation is param.empty else _type_name(param.annotation),
        }
        if param.default is not param.empty:
            entry["default"] = to_jsonable_python(param.default, fallback=repr)
        described.append(entry)
    return described


def _describe_backend(cls: type[imgen.ImageGenerationModel]) -> dict[str, Any]:
    """Everything `imgen info` shows, as JSON-ready data."""
    class_path = f"{cls.__module__}:{cls.__qualname__}"
    listed = next((i for i in imgen.list_backends() if i.class_path == class_path), None)
    # inspect.getdoc would fall back to the base class's docstring, which describes no backend.
    docstring = parse_google_docstring(cls if cls.__dict__.get("__doc__") else None)
    descriptions = cls.field_descriptions()
    model = _introspection_instance(cls)
    return {
        "name": cls.backend_name,
        "class": class_path,
        "distribution": listed.distribution if listed else None,
        "version": listed.version if listed else None,
        "is_async": issubclass(cls, imgen.AsyncImageGenerationModel),
        "aliases": dict(listed.aliases) if listed else {},
        "models": known_models(cls, listed.aliases if listed else {}).to_dict(),
        "summary": docstring["short_description"],
        "description": docstring["description"].split("\n\n")[0],
        "fields": [
            _describe_field(name, field, descriptions.get(name, ""))
            for name, field in cls.model_fields.items()
        ],
        "runtime_parameters": list(
            _flatten_runtime_parameters(model.get_runtime_parameters_info())
        ),
        "generation_kwargs": _describe_generation_kwargs(model),
    }


def _field_line(entry: dict[str, Any]) -> str:
    line = f"  {entry['name']}: {entry['type']}" if entry.get("type") else f"  {entry['name']}"
    if "env_var" in entry:
        fallback = f", else {entry['default']!r}" if "default" in entry else ""
        secret = ", secret" if entry.get("secret") else ""
        return line + f"  (from ${entry['env_var']}{fallback}{secret})"
    if entry.get("secret"):
        return line + "  (secret)"
    if "default" in entry:
        return line + f" = {entry['default']!r}"
    return line + ("  (required)" if entry.get("required", not entry.get("optional")) else "")


def _echo_entries(title: str, entries: list[dict[str, Any]]) -> None:
    click.echo(f"\n{title}:")
    if not entries:
        click.echo("  (none)")
    for entry in entries:
        click.echo(_field_line(entry))
        if entry["description"]:
            click.echo(f"      {entry['description']}")


@main.command()
@click.argument("backend", shell_complete=complete_backend)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(backend: str, as_json: bool) -> None:
    """Show a backend's fields, runtime parameters and generation kwargs.

    BACKEND is a backend name or an alias.
    """
    described = _describe_backend(imgen.get_backend(backend))
    if as_json:
        _echo_json(described)
        return
    mode = "async" if described["is_async"] else "sync"
    plugin = f"{described['distribution']} {described['version']}, " if described["version"] else ""
    click.echo(f"{described['name']} ({plugin}{mode})  {described['class']}")
    for line in KnownModels(**described["models"]).summary_lines():
        click.echo(line)
    for text in (described["summary"], described["description"]):
        if text:
            click.echo(f"\n{text}")
    _echo_entries("Fields (-O FIELD=VALUE)", described["fields"])
    _echo_entries("Runtime parameters", described["runtime_parameters"])
    _echo_entries("Generation kwargs (-p KEY=VALUE)", described["generation_kwargs"])


# -- imgen generate ------------------------------------------------------------------------


def _check_prompts(prompts: list[str]) -> list[str]:
    """The prompts, `-` replaced by the lines of stdin; a blank one is refused."""
    for position, prompt in enumerate(prompts, 1):
        if not prompt.strip():
            raise UserError(f"PROMPT {position} is empty: describe the image to generate.")
    return expand_stdin_prompts(prompts)


def _slug(prompt: str) -> str:
    """`A red fox!` -> `a-red-fox`: lowercase ASCII words joined by hyphens, or `image`."""
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return "-".join(words)[:_SLUG_LENGTH].strip("-") or "image"


def _make_output_dir(directory: Path) -> None:
    """Create the output dir before the model loads, so that a bad one costs no generation."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a read-only parent, a name too long
        raise UserError(
            f"Cannot create the output dir {brief_repr(str(directory))}: "
            f"{exc.strerror or exc}. Choose another with -o."
        ) from None


def _write_new_image(b64: str, directory: Path, stem: str, first_index: int) -> tuple[Path, int]:
    """Write an image to `<stem>-<i>.<ext>` for the first free `i >= first_index`.

    The name is claimed with O_EXCL before the image is written into it, so an existing file
    is never overwritten, even by another `imgen` writing to the same folder at once.

    Returns:
        The path written and the index it used.
    """
    try:
        found = imgen.images.detect_format(imgen.images.decode_bytes(b64))
    except InvalidInputError as exc:  # what the backend sent is no base64: its fault, not yours
        raise InvalidOutputError(str(exc)) from None
    extension = imgen.images.EXTENSIONS.get(found or "", "bin")
    directory.mkdir(parents=True, exist_ok=True)
    index = first_index
    while True:
        path = directory / f"{stem}-{index}.{extension}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            index += 1
    try:
        imgen.images.write_image(b64, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, index


def _images_with_metadata(output: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each image of one prompt's output, with its own metadata (seed, revised prompt...)."""
    for result in output:
        yield from zip(result.get("images") or [], image_metadata(result), strict=True)


@contextmanager
def _status(message: str, stream: TextIO) -> Iterator[None]:
    """Show `message` and the seconds elapsed on `stream` while the block runs, if a TTY."""
    if not stream.isatty():
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def redraw() -> None:
        while True:
            stream.write(f"\r{message} {time.monotonic() - start:.0f}s")
            stream.flush()
            if done.wait(0.5):
                return

    thread = threading.Thread(target=redraw, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        stream.write("\r\x1b[K")  # erase the status line
        stream.flush()


@main.command()
@click.argument("model", metavar="[MODEL]", required=False, shell_complete=complete_model)
@click.argument("prompts", metavar="PROMPT...", nargs=-1)
@NUM_GENERATIONS_OPTION
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Where to write the images (default: the current directory).",
)
@GENERATION_KWARGS_OPTION
@FIELDS_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per image.")
@logged("generate")
def generate(
    model: str | None,
    prompts: Sequence[str],
    num_generations: int,
    output_dir: Path,
    generation_kwargs: tuple[tuple[str, Any], ...],
    fields: tuple[tuple[str, Any], ...],
    as_json: bool,
) -> None:
    """Generate images for each PROMPT and print the paths written.

    MODEL is a spec (`backend:model-id`), an alias, or a saved .json/.yaml model config; left
    out, the default model is used (`imgen models default`). A PROMPT of `-` reads prompts from
    stdin, one per line. Files are named after the prompt
    (`a-red-fox-0.png`) and never overwrite existing ones.
    """
    model, prompts = choose_generate_model(model, list(prompts))
    prompts = _check_prompts(prompts)
    current_log().requested(model, prompts=prompts)  # the prompts read from stdin, not `-`
    _make_output_dir(output_dir)
    built = build_model(model, dict(fields), dict(generation_kwargs))
    spec = built.spec
    count = len(prompts) * num_generations
    failure: GenerationError | None = None
    # stdout is for the images' paths or JSON records: what a library prints there while the
    # model loads and generates goes to stderr instead.
    with (
        contextlib.redirect_stdout(sys.stderr),
        built,
        _status(f"Generating {count} image(s) with {spec}...", sys.stderr),
    ):
        try:
            outputs: list[Any] = built.generate_outputs(prompts, num_generations=num_generations)
        except GenerationError as exc:
            outputs, failure = exc.results, exc  # save what completed, then report the rest
    next_index: dict[str, int] = {}
    unwritable: list[str] = []  # one bad image does not keep the others from being written
    for position, (prompt, output) in enumerate(zip(prompts, outputs, strict=True), 1):
        stem = _slug(prompt)
        for index, (b64, metadata) in enumerate(_images_with_metadata(output or [])):
            try:
                path, used = _write_new_image(b64, output_dir, stem, next_index.get(stem, 0))
            except InvalidOutputError as exc:
                unwritable.append(f"prompt {position}, image {index}: {exc}")
                continue
            next_index[stem] = used + 1
            current_log().image_written(path, metadata)
            if not as_json:
                click.echo(str(path))
                continue
            record = {"path": str(path), "prompt": prompt, "model": spec, "index": index}
            record.update((key, value) for key, value in metadata.items() if key not in record)
            click.echo(json.dumps(record, ensure_ascii=False, default=str))
    if failure is not None:
        raise failure
    if unwritable:
        raise InvalidOutputError(
            f"{len(unwritable)} image(s) could not be written; {'; '.join(unwritable)}"
        )
    recorded = [
        f"prompt {position}: {output[0]['error']}"
        for position, output in enumerate(outputs, 1)
        if output[0].get("error")
    ]
    if recorded:  # on_error="record" kept the batch going; the exit code still says it failed
        raise click.ClickException(
            f"{len(recorded)} of {len(prompts)} prompts failed; {'; '.join(recorded)}"
        )
