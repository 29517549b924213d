"""Write the configuration reference (docs/reference/configuration.md) from the config schema's own
fields: every key's path, type, default and description, as `stream/config.py` declares them.

    python scripts/config_reference.py            # rewrite docs/reference/configuration.md
    python scripts/config_reference.py --check    # exit 1 when the file is not what the schema gives
"""
from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "reference" / "configuration.md"

HEADER = """# Configuration reference

Every key of a Hawkwatch config, generated from the schema (`stream/config.py`) by
`python scripts/config_reference.py`; a test fails when this page and the schema differ. Paths in a
config are relative to the config file's folder. `<id>` is a camera id; `cameras.<id>` also takes
`ingest`, `windows`, `events` and `normal` of its own, merged over the top-level ones. How the
settings work together is in the [operator guide](../operator-guide.md) and
[configuration](../configuration.md).
"""


def _models(tp) -> list[type[BaseModel]]:
    """The config models inside a type (Optional[X], dict[str, X], X | Y ...)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in _models(arg)]


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`".replace("'", '"') for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (dict, list, tuple):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)}]"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _default(field) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return ""
        return "" if isinstance(value, BaseModel) else f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "required"
    if isinstance(field.default, BaseModel):
        return ""
    return f"`{field.default!r}`" if field.default is not None else "`null`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def sections(model: type[BaseModel], prefix: str = "", seen: set | None = None) -> list[tuple[str, str, list]]:
    """(key path, the model's docstring, rows) for `model` and every model below it, depth first."""
    seen = set() if seen is None else seen
    rows, below = [], []
    for name, field in model.model_fields.items():
        tp = field.annotation
        what = field.description or next((_cell(m.__doc__).split(". ")[0].rstrip(".") + "." for m in _models(tp)
                                           if m.__doc__ and m.__doc__ != BaseModel.__doc__), "")
        rows.append((f"`{prefix}{name}`", _type_name(tp), _default(field), _cell(what)))
        for sub in _models(tp):
            key = (sub, prefix + name)
            if key in seen:
                continue
            seen.add(key)
            mapping = typing.get_origin(tp) is dict or any(typing.get_origin(a) is dict for a in typing.get_args(tp))
            below += sections(sub, f"{prefix}{name}{'.<id>' if mapping else ''}.", seen)
    doc = _cell((model.__doc__ or "").strip()) if model.__doc__ != BaseModel.__doc__ else ""
    return [(prefix.rstrip(".") or "top level", doc, rows)] + below


def render() -> str:
    from stream.config import HawkwatchConfig

    out = [HEADER]
    for path, doc, rows in sections(HawkwatchConfig):
        out.append(f"\n## {path}\n")
        if doc:
            out.append(f"\n{doc}\n")
        out.append("\n| key | type | default | what it does |\n|---|---|---|---|\n")
        out += [f"| {k} | {t} | {d} | {w} |\n" for k, t, d, w in rows]
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the page differs from the schema")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is not what the schema gives: run python scripts/config_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
