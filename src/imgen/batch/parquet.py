"""The Parquet layout of a shard: images as the `datasets` Image feature, metadata as columns.

A shard is a table with one row per image, sorted by (row, generation):

    image       struct<bytes: binary, path: string>: the image as the backend sent it, and its
                file name (`<row:06d>-<k>.<ext>`); the schema's `huggingface` metadata marks
                the column as an Image feature, so `datasets` decodes it
    prompt, model, row, generation, seed
                the fixed columns (seed in a seeded job only)
    ...         the rest of the image's metadata, as in an imagefolder's metadata line: the
                backend's own (format, revised_prompt...), the generation kwargs, the row's
                carried fields

The fixed columns have fixed types. The others are typed from their values, by a rule that
depends on the values only: text is `string`, whole numbers `int64`, other numbers `double`,
booleans `bool`, lists and objects what pyarrow infers for them; a column whose values mix
kinds holds each value as JSON text. Shards written apart (by different workers) may still
disagree, when a column is null in one and text in another, or appears in one only: `unify`
gives the schema that holds both, and `conform` rewrites a table to it.

Files are written and read by local path with pyarrow's own I/O, never through a Python file
object (see `imgen.batch.destination` for how they travel to and from remote filesystems).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imgen.batch.records import ImageRecord

__all__ = [
    "IMAGE_COLUMN",
    "build_table",
    "conform",
    "metadata_schema",
    "read_table",
    "schema_from_text",
    "schema_to_text",
    "sort_rows",
    "unify",
    "write_table",
]

IMAGE_COLUMN = "image"
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
FIXED_TYPES = {
    "prompt": pa.string(),
    "model": pa.string(),
    "row": pa.int64(),
    "generation": pa.int64(),
    "seed": pa.int64(),
}
# What `datasets` reads to decode the image column; the other columns' features follow from
# their Arrow types.
_HF_METADATA = {
    b"huggingface": json.dumps({"info": {"features": {IMAGE_COLUMN: {"_type": "Image"}}}}).encode()
}
# Rows per row group: what the Hub's viewer and `datasets` use for images, so that a reader
# holds a few images at a time, not a whole shard.
ROW_GROUP_ROWS = 100
_INT64 = range(-(2**63), 2**63)


def build_table(images: Sequence[ImageRecord]) -> pa.Table:
    """A shard's table: one row per image, in the order given (sort them first)."""
    columns: dict[str, list[Any]] = {}
    for position, image in enumerate(images):
        for key in image.metadata:
            if key not in columns:
                columns[key] = [None] * position
        for key, values in columns.items():
            values.append(image.metadata.get(key))
    arrays = {
        IMAGE_COLUMN: pa.array(
            [{"bytes": image.data, "path": image.name} for image in images], IMAGE_TYPE
        )
    }
    for name, values in columns.items():
        arrays[name] = _typed(name, values)
    return pa.table(arrays).replace_schema_metadata(_HF_METADATA)


def _typed(name: str, values: list[Any]) -> pa.Array:
    fixed = FIXED_TYPES.get(name)
    if fixed is not None:
        return pa.array(values, fixed)
    present = [value for value in values if value is not None]
    if not present:
        return pa.nulls(len(values))
    if all(isinstance(value, bool) for value in present):
        return pa.array(values, pa.bool_())
    if all(type(value) is int and value in _INT64 for value in present):
        return pa.array(values, pa.int64())
    if all(type(value) in (int, float) for value in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if all(isinstance(value, str) for value in present):
        return pa.array(values, pa.string())
    if all(isinstance(value, list | dict) for value in present):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    return pa.array([_as_text(value) for value in values], pa.string())


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def unify(schemas: Iterable[pa.Schema]) -> pa.Schema:
    """The schema that holds the tables of every schema given: each column of any of them, in
    the order they first appear, with the type that holds all its values (`int64` and `double`
    make `double`, other mixes make JSON text; a null column takes the other's type)."""
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for field in schema:
            types.setdefault(field.name, []).append(field.type)
    fields = []
    for name, found in types.items():
        kinds = list(dict.fromkeys(t for t in found if not pa.types.is_null(t)))
        if not kinds:
            kind = pa.null()
        elif len(kinds) == 1:
            kind = kinds[0]
        elif all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in kinds):
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields, metadata=_HF_METADATA)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with the columns and types of `schema` (see `unify`); a missing column is null."""
    arrays = []
    for field in schema:
        if field.name not in table.column_names:
            arrays.append(pa.nulls(len(table), field.type))
            continue
        column = table.column(field.name)
        if column.type == field.type:
            arrays.append(column)
        elif pa.types.is_string(field.type) and not pa.types.is_null(column.type):
            arrays.append(pa.array([_as_text(v) for v in column.to_pylist()], pa.string()))
        else:
            arrays.append(pc.cast(column, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def sort_rows(table: pa.Table) -> pa.Table:
    """`table` in the order of a shard: by row, then generation."""
    return table.sort_by([("row", "ascending"), ("generation", "ascending")])


def write_table(table: pa.Table, path: Path) -> None:
    """Write `table` to the local file `path` as a shard."""
    pq.write_table(
        table.replace_schema_metadata(_HF_METADATA),
        str(path),
        row_group_size=ROW_GROUP_ROWS,
    )


def read_table(path: Path) -> pa.Table:
    """The table of the local shard file `path`."""
    return pq.read_table(str(path))


def metadata_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` without its metadata: what the shards of a dataset must agree on."""
    return schema.remove_metadata()


def schema_to_text(schema: pa.Schema) -> str:
    """`schema` (without its metadata) as text a JSON manifest can hold."""
    return base64.b64encode(metadata_schema(schema).serialize().to_pybytes()).decode("ascii")


def schema_from_text(text: str) -> pa.Schema:
    """The schema `schema_to_text` wrote."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
