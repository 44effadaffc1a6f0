"""The one escaping path of the review page: HTML is built only from constant templates and escaped values.

Every value the page shows comes from data or the file system (keys, bins, group names, notes holding
paths, ``run.json`` entries, file names) and may hold markup. ``html(template, *values)`` fills a constant
template and escapes each value for text and attribute context alike (``& < > " '``), except values that
are already :class:`Markup` (HTML this module built). A forgotten :class:`Markup` therefore shows escaped
text twice, never runs as HTML. ``inline(tag, text)`` embeds the page's own CSS and JS and refuses text that
could end its element early; ``csp_hash`` is the Content-Security-Policy source that allows exactly that text.
``data_block(id, value)`` carries data for the page's script as JSON in a ``<script type="application/json">``
(a data block: never executed, so no CSP hash; ``<``, ``>`` and ``&`` are written as ``\\u`` escapes, so no
value can end the element or open a comment).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html as _html
import json
import re
import string
from collections.abc import Iterable
from typing import Any


class Markup(str):
    """Text known to be safe HTML (built by this module from constant templates and escaped values)."""

    __slots__ = ()

    def __add__(self, other: Any) -> Markup:
        return Markup(str.__add__(self, esc(other)))

    def __radd__(self, other: Any) -> Markup:
        return Markup(str.__add__(esc(other), self))


def esc(value: Any) -> Markup:
    """``value`` as HTML text or attribute value (``Markup`` passes unchanged)."""
    if isinstance(value, Markup):
        return value
    return Markup(_html.escape(str(value), quote=True))


class _Escaping(string.Formatter):
    """``str.format`` whose every replacement field is escaped unless it is ``Markup``."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Markup):
            if format_spec:
                raise ValueError("a format spec on Markup would format HTML as text")
            return value
        return esc(format(value, format_spec))


_ESCAPING = _Escaping()


@functools.lru_cache(maxsize=1024)
def _fields(template: str) -> tuple[tuple[str, str | None, str, str | None], ...] | None:
    """``template`` parsed once: (literal, field, spec, conversion) parts, or None when a field is more than
    ``{}``/``{N}`` with a plain spec (those go through ``string.Formatter`` every time)."""
    parts = tuple(_ESCAPING.parse(template))
    plain = all(f is None or ((f == "" or f.isdigit()) and "{" not in (spec or "")) for _, f, spec, _ in parts)
    return parts if plain else None


def html(template: str, *values: Any, **named: Any) -> Markup:
    """Fill ``template`` (a constant of this package, never data) with escaped ``values``."""
    parts = _fields(template)
    if parts is None or named:
        return Markup(_ESCAPING.vformat(template, values, named))
    out, auto = [], 0
    for literal, field, spec, conversion in parts:
        out.append(literal)
        if field is None:
            continue
        if field == "":
            value, auto = values[auto], auto + 1
        else:
            value = values[int(field)]
        if conversion:
            value = _ESCAPING.convert_field(value, conversion)
        out.append(_ESCAPING.format_field(value, spec))
    return Markup("".join(out))


def join(parts: Iterable[Any], sep: str = "") -> Markup:
    """``parts`` (each escaped unless ``Markup``) joined by the constant HTML ``sep``."""
    return Markup(sep.join(esc(p) for p in parts))


def local_src(path: str) -> str:
    """``path`` when it is a relative path inside the report folder (the only URLs the page loads).

    Raises:
        ValueError: a scheme (``javascript:``, ``http:``), an absolute path, a query or ``..``.
    """
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)*", path) or ".." in path.split("/"):
        raise ValueError(f"not a relative path inside the report folder: {path!r}")
    return path


def inline(tag: str, text: str) -> Markup:
    """``<tag>text</tag>`` for the page's own ``style`` or ``script`` text (a package file, not data).

    Raises:
        ValueError: ``text`` contains ``</tag`` or ``<!--`` (either would end or change the element early,
            so its CSP hash would not describe what the browser runs).
    """
    if re.search(rf"</{tag}|<!--", text, re.IGNORECASE):
        raise ValueError(f"inline {tag} text must not contain '</{tag}' or '<!--'")
    return Markup(f"<{tag}>{text}</{tag}>")


def csp_hash(text: str) -> str:
    """The CSP source expression (``'sha256-...'``) allowing the inline element whose text is ``text``."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


#: Characters above Latin-1 (written as their UTF-16 units: an astral one as its two surrogates).
_WIDE = re.compile("[\u0100-\U0010ffff]")


def _escape_wide(match: re.Match[str]) -> str:
    return "".join(f"\\u{unit:04x}" for unit in memoryview(match.group().encode("utf-16-le")).cast("H"))


def data_json(value: Any) -> str:
    """``value`` as JSON text safe inside any HTML element: no ``<``, ``>`` or ``&`` (written ``\\u003c``...),
    and no character above Latin-1 (written ``\\u2212``, an astral one as its two surrogates), so the
    browser keeps the block's text in one byte per character (a text with any wider character takes two
    bytes for each: the item HTML blocks are most of the page, and stay in memory until first shown)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _WIDE.sub(_escape_wide, text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


def data_block(name: str, value: Any) -> Markup:
    """``value`` for the page's script: ``<script type="application/json" data-block="name">JSON</script>``."""
    return html('<script type="application/json" data-block="{}">', name) + Markup(data_json(value)) \
        + Markup("</script>")
