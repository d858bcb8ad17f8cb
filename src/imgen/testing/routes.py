"""Path patterns for `LocalServer` routes: `/v1/images`, `/prompt/{prompt}`, `/files/{rest:path}`.

A pattern is compared with a request path segment by segment, after each segment of the path
has been percent-decoded on its own. So a placeholder captures the decoded text of one
segment, and an encoded slash (`%2F`) inside a segment stays inside that capture instead of
splitting the path.

- Literal text matches the same decoded text: `/v1/images` matches `/v1/images` and only it.
- `{name}` matches one non-empty segment, or part of one: `/prompt/{prompt}` matches
  `/prompt/a%20red%20fox` with `prompt="a red fox"`; `/models/{model}:predict` matches
  `/models/imagen-3:predict` with `model="imagen-3"`.
- `{name:path}`, only as the last segment, matches the rest of the path, slashes included and
  possibly empty, which makes a prefix route: `/files/{rest:path}` matches `/files/` and
  `/files/a/b.png` (`rest="a/b.png"`), but not `/files` or `/filesystem`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = ["PathPattern"]

_PLACEHOLDER = re.compile(r"\{(?P<name>[A-Za-z_]\w*)(?::(?P<kind>\w+))?\}")


@dataclass(frozen=True)
class PathPattern:
    """A route's path: literal text and `{name}` / `{name:path}` placeholders.

    Args:
        text: The pattern, starting with `/`.

    Raises:
        ValueError: The pattern does not start with `/`, repeats a placeholder name, uses an
            unknown placeholder kind, or has `{name:path}` anywhere but as the last segment.
    """

    text: str
    _segments: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _rest: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.text.startswith("/"):
            raise ValueError(f"A route path must start with '/', got {self.text!r}.")
        parts = self.text.split("/")[1:]
        rest = None
        last = _PLACEHOLDER.fullmatch(parts[-1])
        if last is not None and last["kind"] == "path":
            rest = last["name"]
            parts = parts[:-1]
        seen = {rest} if rest else set()
        segments = []
        for part in parts:
            pieces, position = [], 0
            for found in _PLACEHOLDER.finditer(part):
                if found["kind"] is not None:
                    problem = (
                        "can only be the last segment"
                        if found["kind"] == "path"
                        else f"has an unknown kind {found['kind']!r}"
                    )
                    raise ValueError(
                        f"In route path {self.text!r}, {found[0]} {problem}: "
                        "{name} matches one segment, {name:path} the rest of the path."
                    )
                if found["name"] in seen:
                    raise ValueError(
                        f"Route path {self.text!r} uses the placeholder {found[0]} twice."
                    )
                seen.add(found["name"])
                pieces.append(re.escape(part[position : found.start()]))
                pieces.append(f"(?P<{found['name']}>.+)")
                position = found.end()
            pieces.append(re.escape(part[position:]))
            segments.append(re.compile("".join(pieces), re.DOTALL))
        object.__setattr__(self, "_segments", tuple(segments))
        object.__setattr__(self, "_rest", rest)

    @property
    def is_literal(self) -> bool:
        """Whether the pattern has no placeholder and so matches exactly one path."""
        return self._rest is None and not any(s.groupindex for s in self._segments)

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The decoded placeholder values if `raw_path` matches, else None.

        Args:
            raw_path: The path as sent, percent-encoding kept, without the query string.
        """
        if not raw_path.startswith("/"):
            return None
        raw_segments = raw_path.split("/")[1:]
        fixed = len(self._segments)
        if len(raw_segments) < fixed or (self._rest is None and len(raw_segments) != fixed):
            return None
        if self._rest is not None and len(raw_segments) == fixed:
            return None  # the prefix without the slash that starts the rest
        values: dict[str, str] = {}
        for segment, raw in zip(self._segments, raw_segments, strict=False):
            found = segment.fullmatch(unquote(raw))
            if found is None:
                return None
            values.update(found.groupdict())
        if self._rest is not None:
            values[self._rest] = unquote("/".join(raw_segments[fixed:]))
        return values
