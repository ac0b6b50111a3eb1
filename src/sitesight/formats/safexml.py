"""Parse XML from outside safely: entity bombs and external references are refused.

Every failure becomes one `InputError` naming the file and, for syntax errors, the line and column.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError, XMLParser

import defusedxml
import defusedxml.ElementTree as DET

from sitesight.errors import InputError

__all__ = ["parse_xml", "describe", "collector_paused"]


def parse_xml(path: Path | str) -> Element:
    """The root element of an XML file.

    Raises:
        InputError: missing/empty file, syntax error (with line and column), DTD entities
            (possible entity-expansion bomb) or external references.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        if not data or data.isspace():  # (no stripped copy of a large file)
            raise InputError("empty file, expected XML", path)
        with collector_paused():
            if _needs_defused(data):
                return DET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
            parser = XMLParser()  # the C parser: without a DOCTYPE no entity can be declared
            parser.feed(data)
            return parser.close()
    except ParseError as exc:
        line, col = getattr(exc, "position", (None, None))
        where = f"line {line}, column {col}" if line is not None else None
        reason = str(exc).split(":")[0]
        raise InputError(f"malformed XML: {reason}", path, where) from None
    except defusedxml.EntitiesForbidden as exc:
        raise InputError(
            f"XML entity declaration {exc.name!r} refused (possible entity-expansion bomb)", path, "DOCTYPE"
        ) from None
    except defusedxml.DTDForbidden:
        raise InputError("XML DTD refused", path, "DOCTYPE") from None
    except defusedxml.ExternalReferenceForbidden as exc:
        raise InputError(f"external XML reference refused ({exc.sysid})", path, "DOCTYPE") from None
    except defusedxml.DefusedXmlException as exc:
        raise InputError(f"unsafe XML refused: {exc}", path) from None
    except LookupError as exc:  # <?xml encoding="..."?> names no codec Python knows
        raise InputError(f"unsupported XML encoding ({str(exc)[:80]})", path, "line 1") from None
    except (RecursionError, MemoryError):
        raise InputError("XML nested too deep or too large", path) from None
    except IsADirectoryError:
        raise InputError("is a folder, expected an XML file", path) from None
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", path) from None


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a tree is built, then restore its state.

    A 100k-box CVAT file is ~300k elements; each allocation burst triggers collections that walk
    the growing (acyclic) tree and free nothing: a quarter of the parse time (benchmarks/
    bench_cvat_parse.py). Reference counting still frees everything as usual. Nests: an inner
    pause leaves the collector as the outer one found it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _needs_defused(data: bytes) -> bool:
    """True unless the bytes are ASCII-compatible and hold no DOCTYPE (so no entity declarations).

    Entities can only be declared inside a DOCTYPE, and XML spells the keyword in upper case. Any
    file that has one, or that is not in an ASCII-compatible encoding (UTF-16/32, where the byte
    search would miss it), goes through defusedxml's slower checked parser instead.
    """
    head = data[:4]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head or b"\x4c\x6f\xa7\x94" == head:
        return True
    return b"<!DOCTYPE" in data


def describe(element: Element, index: int | None = None, keys: tuple[str, ...] = ("id", "name", "label")) -> str:
    """A short locator for an element, e.g. ``<box #3 label="head">``, for error messages."""
    parts = [element.tag]
    if index is not None:
        parts.append(f"#{index}")
    for key in keys:
        value = element.get(key)
        if value is not None:
            parts.append(f'{key}="{value[:60]}"')
    return "<" + " ".join(parts) + ">"
