"""JSON Schemas of the managed items, derived from the configuration's dataclasses (one source of truth: a
field added to `controller/config.py` is in the API at once). They check the shape of a request (types, known
keys); the configuration file's loader then checks it with the file's rules and messages."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union, get_args, get_origin

from controller.plugins.admin.kinds import Kind, section_type

KEY = {"type": "string", "minLength": 1, "maxLength": 128}


def json_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.0 dialect: `nullable`) of a value of type `hint`."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        schema = json_schema(options[0]) if len(options) == 1 else {"anyOf": [json_schema(o) for o in options]}
        return {**schema, "nullable": True} if type(None) in get_args(hint) else schema
    if origin is typing.Literal:
        return {"enum": list(get_args(hint))}
    if origin in (list, tuple):
        (item,) = get_args(hint)[:1] or (Any,)
        return {"type": "array", "items": json_schema(item)}
    if origin is dict:
        _, value = get_args(hint) or (str, Any)
        return {"type": "object", "additionalProperties": json_schema(value)}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return dataclass_schema(hint)
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return {"type": simple[hint]} if hint in simple else {}


def dataclass_schema(cls: type, *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with the dataclass's fields; those without a default are required, but for `optional`."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
    required = [f.name for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name not in optional]
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": {f.name: json_schema(hints[f.name]) for f in fields}}
    if required:
        schema["required"] = required
    return schema


def item_schema(kind: Kind) -> dict[str, Any]:
    """An item as the document holds it (and as GET answers it)."""
    return _schema(kind, for_request=False)


def body_schema(kind: Kind) -> dict[str, Any]:
    """A PUT's body: the item as the document holds it; the key comes from the path (a key field may repeat it).
    An object body must name at least one field (an empty one is a mistake, not "all defaults")."""
    return _schema(kind, for_request=True)


def _schema(kind: Kind, *, for_request: bool) -> dict[str, Any]:
    if kind.shape == "fields":
        hints = typing.get_type_hints(section_type(kind.section))
        schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                                  "properties": {name: json_schema(hints[name]) for name in kind.fields}}
    elif kind.shape in ("list", "single"):
        schema = dataclass_schema(kind.item_type, optional=(kind.key_field,) if for_request else ())
    else:
        schema = json_schema(kind.item_type)
    if for_request and schema.get("type") == "object" and not schema.get("required"):
        schema["minProperties"] = 1
    return schema


def checked_body_schema(kind: Kind) -> dict[str, Any]:
    """What the HTTP layer checks of a PUT's body: its shape only (an object with known keys, or a string). The
    values are checked by the configuration file's loader, so that they get the file's messages (422)."""
    schema = body_schema(kind)
    if schema.get("type") != "object" or "properties" not in schema:
        return schema
    return {"type": "object", "additionalProperties": False, "minProperties": 1,
            "properties": {name: {} for name in schema["properties"]}}
