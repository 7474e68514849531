"""Job arguments and results as JSON, through pydantic only (never pickle).

Arguments are validated against the job's schema and must survive a JSON round trip
unchanged; anything that would not (NaN, a set of objects under `Any`, a too-large
payload) is refused before anything is written.
"""

from __future__ import annotations

import difflib
import json
import math
from functools import lru_cache
from typing import Any

import pydantic_core
from pydantic import AliasChoices, AliasPath, BaseModel, ValidationError

from .errors import JobArgumentsError

TEXT_LIMIT = 16_384
"""Stored error messages and tracebacks are cut to this many characters."""


def _field_errors(job: str, error: ValidationError, what: str = "invalid arguments") -> JobArgumentsError:
    fields = [".".join(str(p) for p in e["loc"]) or "(args)" for e in error.errors()]
    details = "; ".join(
        f"field '{'.'.join(str(p) for p in e['loc']) or '(args)'}': {e['msg']}"
        for e in error.errors()
    )
    return JobArgumentsError(job, f"{what}: {details}", fields)


def validate(job: str, schema: type[BaseModel], args: BaseModel | None, kwargs: dict[str, Any]) -> BaseModel:
    """Build the schema instance from a model instance or keyword arguments."""
    if args is not None:
        if kwargs:
            raise JobArgumentsError(job, "pass either a schema instance or keyword arguments, not both")
        if not isinstance(args, schema):
            raise JobArgumentsError(
                job, f"expected a {schema.__name__} instance, got {type(args).__name__}"
            )
        # Revalidate: the instance may have been built with model_construct or mutated.
        kwargs = args.model_dump()
    elif kwargs and (known := _names(schema)) is not None and not kwargs.keys() <= known:
        _refuse_unknown(job, schema, known, kwargs)
    try:
        return schema.model_validate(kwargs)
    except ValidationError as error:
        raise _field_errors(job, error) from None


@lru_cache(maxsize=1024)
def _names(schema: type[BaseModel]) -> frozenset[str] | None:
    """The keywords `schema` takes: its fields' names and aliases. None when the schema
    itself says what to do with others (`extra` in its model_config)."""
    if schema.model_config.get("extra") is not None:
        return None
    names: set[str] = set()
    for name, field in schema.model_fields.items():
        names.add(name)
        for alias in (field.alias, field.validation_alias):
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            for choice in choices:
                first = choice.path[0] if isinstance(choice, AliasPath) else choice
                if isinstance(first, str):
                    names.add(first)
    return frozenset(names)


def _refuse_unknown(job: str, schema: type[BaseModel], known: frozenset[str], kwargs: dict[str, Any]) -> None:
    """A misspelled keyword would otherwise vanish: pydantic ignores keys a model does not
    declare, and the job would run with the default in its place. A schema that sets
    `extra` (ignore, allow or forbid) keeps its own rule."""
    unknown = sorted(k for k in kwargs if k not in known)
    declared = [field.alias or name for name, field in schema.model_fields.items()]  # as a caller spells them
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, declared, n=1)
        hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    takes = ", ".join(declared) or "no arguments"
    raise JobArgumentsError(
        job, f"unknown argument(s) {', '.join(hints)}: {schema.__name__} takes {takes}. "
             "To accept others, set model_config = ConfigDict(extra='ignore') (or 'allow') on the schema",
        unknown)


def _unserializable(model: BaseModel) -> list[str]:
    """The fields whose values have no JSON form (only looked for once encoding failed)."""
    bad = []
    for name in type(model).model_fields:
        try:
            model.model_dump_json(include={name})
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError):
            bad.append(name)
    return bad


def utf8_size(text: str) -> int:
    """How many bytes `text` takes as UTF-8, as the database stores it (not its length in characters)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def encode(job: str, model: BaseModel, max_bytes: int) -> str:
    """The JSON text stored for `model`; refuses what would not come back unchanged."""
    try:
        text = model.model_dump_json()
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as error:
        fields = _unserializable(model)
        where = f" (field(s): {', '.join(fields)})" if fields else ""
        reason = str(error)
        if "surrogates not allowed" in reason:
            # Usually text decoded with errors="surrogateescape" (file names, sys.argv).
            reason = ("text with a lone surrogate (such as '\\udcff') has no UTF-8 form; "
                      "clean it first, e.g. text.encode('utf-8', 'replace').decode()")
        raise JobArgumentsError(job, f"arguments cannot be stored as JSON{where}: {reason}", fields) from None
    size = utf8_size(text)
    if size > max_bytes:
        raise JobArgumentsError(
            job, f"arguments are {size} bytes as JSON (UTF-8), over the limit of {max_bytes}; "
            "store large data elsewhere and pass a reference (or raise max_args_bytes)"
        )
    try:
        back = type(model).model_validate_json(text)
    except ValidationError as error:
        # Typically NaN or infinity, which JSON has no form for (they come back as null).
        raise _field_errors(job, error, "arguments do not survive a JSON round trip (NaN and infinity "
                                        "become null)") from None
    if back != model:
        changed = [
            name for name in type(model).model_fields
            if getattr(back, name, None) != getattr(model, name, None)
        ]
        raise JobArgumentsError(
            job,
            "arguments would not come back unchanged from JSON (NaN/infinity, sets, or "
            f"objects without a JSON form) in field(s): {', '.join(changed) or '(args)'}",
            changed,
        )
    return text


def decode(job: str, schema: type[BaseModel], text: str) -> BaseModel:
    """Rebuild the arguments of a stored job; a readable error when they no longer fit."""
    try:
        return schema.model_validate_json(text)
    except ValidationError as error:
        raise _field_errors(job, error) from None


def encode_result(value: Any) -> str | None:
    r"""A job's return value as JSON; values with no JSON form are stored as their repr.

    Text with a lone surrogate (a file name decoded with errors="surrogateescape") has no
    UTF-8 form, so it is written as a JSON escape, which reads back as the same text: the
    job ran, and failing it for its result would run it again.

    >>> encode_result({"file": "caf\udcff", "size": float("nan")})
    '{"file": "caf\\udcff", "size": null}'
    >>> json.loads(encode_result(["caf\udcff"])) == ["caf\udcff"]
    True
    """
    if value is None:
        return None
    try:
        return pydantic_core.to_json(value, fallback=repr, inf_nan_mode="null").decode()
    except pydantic_core.PydanticSerializationError as error:
        if "surrogates not allowed" not in str(error):
            raise
        return json.dumps(_plain(value), allow_nan=False)  # ASCII only: every lone surrogate escaped


def _plain(value: Any) -> Any:
    """`value` as JSON's plain types with its text left as it is (lone surrogates too, which
    pydantic's serializer refuses); what pydantic knows (models, dates) converted by it."""
    if isinstance(value, str | bool | int | None):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(_plain(key)): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return _plain(pydantic_core.to_jsonable_python(value, fallback=repr, inf_nan_mode="null"))


def truncate(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    """Cut long error messages and tracebacks, keeping the start and the end."""
    if text is None or len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"
