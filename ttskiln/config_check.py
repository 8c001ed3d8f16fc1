"""The YAML configuration against its JSON schema: one line per mistake, with its place.

``check_config`` is what the workflow runs before planning. A mistake becomes one
``ConfigError`` line: the file, line and column the key was read from (when the YAML files are
known), the model, the key path, the problem, and "did you mean" for a misspelt key. It also
refuses what JSON schema cannot express: non-finite numbers and keys that are not strings.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ttskiln.errors import ConfigError, one_line

#: The schema that ships with the workflow.
SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"
#: What a name that becomes a path component or a wildcard value may hold (schema patterns).
NAME_HINT = "letters, digits, '_' and '-', starting with a letter, at most 64 characters"
TAG_HINT = "letters, digits, '.', '_', '+' and '-', starting with a letter or digit, at most 64 characters"
_HINTS = {
    "^[A-Za-z][A-Za-z0-9_-]{0,63}$": NAME_HINT,
    "^[A-Za-z][A-Za-z0-9_]{0,63}$": "letters, digits and '_', starting with a letter, at most 64 characters",
    "^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$": TAG_HINT,
}
_JSON_TYPES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read one YAML config file; a syntax error names its file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {one_line(exc, 240)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping at the top level, got {_kind(data)}")
    return data


def check_config(config: Any, schema: str | Path = SCHEMA, sources: Sequence[str | Path] = ()) -> None:
    """Raise ConfigError (one line) unless ``config`` fits the schema. ``sources`` are the YAML
    files it was read from, later ones overriding earlier ones (used for line numbers)."""
    import jsonschema

    _Validator = _validator_class()
    where = _Locator(sources)
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping at the top level, got {_kind(config)}")
    gpu = config.get("gpu")
    if isinstance(gpu, dict) and isinstance(gpu.get("stages"), bool):
        # YAML 1.1 reads an unquoted on/off as true/false: take them as the words they were.
        gpu["stages"] = "on" if gpu["stages"] else "off"
    for path, problem in _plain_data_problems(config, (), keys_only=True):
        raise ConfigError(where.line(path, problem))
    validator = _Validator(_load_schema(str(schema)))
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        path, problem = _describe(error)
        raise ConfigError(where.line(path, problem, at_key=problem.startswith("unknown key")))
    # JSON schema's numbers include NaN and infinity (NaN passes every bound).
    for path, problem in _plain_data_problems(config, ()):
        raise ConfigError(where.line(path, problem))


def _strict_integer(checker: Any, value: Any) -> bool:
    # JSON schema counts 40.0 as an integer (and Python counts True); a count in YAML is written 40.
    return isinstance(value, int) and not isinstance(value, bool)


def _validator_class() -> Any:
    import jsonschema

    base = jsonschema.Draft202012Validator
    return jsonschema.validators.extend(base, type_checker=base.TYPE_CHECKER.redefine("integer", _strict_integer))


#: libyaml's safe loader where PyYAML was built with it (the same documents, faster).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=4)
def _load_schema(schema: str) -> dict[str, Any]:
    with open(schema, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_LOADER)


# -- what JSON schema does not see ---------------------------------------------------------
def _plain_data_problems(value: Any, path: tuple[Any, ...], keys_only: bool = False) -> Iterable[tuple[tuple[Any, ...], str]]:
    if isinstance(value, float) and not math.isfinite(value) and not keys_only:
        yield path, f"must be a finite number, got {value}"
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield path, f"key {key!r} must be a string (quote it)"
                return
            yield from _plain_data_problems(item, (*path, key), keys_only)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _plain_data_problems(item, (*path, i), keys_only)


# -- one line per schema error -------------------------------------------------------------
def _describe(error: Any) -> tuple[tuple[Any, ...], str]:
    """(key path, problem) of the most relevant schema error."""
    path = tuple(error.absolute_path)
    kind, value, schema = error.validator, error.instance, error.schema
    if kind in ("oneOf", "anyOf"):
        inner = _alternative_error(error)
        if inner is not None:
            return _describe(inner)
        options = " or ".join(_alternative_text(s) for s in error.validator_value)
        return path, f"must be {options}, got {_short(value)}"
    if kind == "additionalProperties" and error.validator_value is False:
        known = sorted(schema.get("properties", {}))
        extra = sorted(k for k in value if k not in schema.get("properties", {}))
        key = extra[0] if extra else "?"
        return (*path, key), f"unknown key {key!r}{_did_you_mean(key, known)}; known keys: {', '.join(known)}"
    if kind == "propertyNames":
        return path, f"name {_short(value)} is not allowed: use {_pattern_hint(error.validator_value.get('pattern', ''))}"
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return path, f"missing required key {missing[0]!r}" if missing else error.message
    if kind == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return path, f"must be {' or '.join(_JSON_TYPES.get(t, t) for t in wanted)}, got {_short(value)}"
    if kind == "enum":
        return path, f"must be one of {', '.join(map(str, error.validator_value))}; got {_short(value)}{_did_you_mean(value, error.validator_value)}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        if isinstance(value, float) and not math.isfinite(value):
            return path, f"must be a finite number, got {value}"
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return path, f"must be {op} {error.validator_value}, got {_short(value)}"
    if kind == "pattern" and "propertyNames" in list(error.absolute_schema_path):
        return path, f"name {_short(value)} is not allowed: use {_pattern_hint(error.validator_value)}"
    if kind == "pattern":
        return path, f"{_short(value)} is not allowed: use {_pattern_hint(error.validator_value)}"
    if kind == "minProperties":
        return path, "must not be empty"
    if kind == "uniqueItems":
        return path, f"lists an item twice: {_short(value)}"
    if kind in ("minLength", "maxLength"):
        return path, f"must be {'at least' if kind == 'minLength' else 'at most'} {error.validator_value} characters long"
    return path, one_line(error.message, 240)


def _alternative_error(error: Any) -> Any:
    """For a oneOf/anyOf whose alternatives differ by type: the error of the alternative
    the value's type fits (a misspelt key inside the synthetic mapping, say)."""
    value = error.instance
    fits = []
    for index, alternative in enumerate(error.validator_value):
        kind = alternative.get("type")
        if kind == "object" and isinstance(value, dict) or kind == "string" and isinstance(value, str):
            fits.append(index)
    if len(fits) != 1:
        return None
    inner = [e for e in error.context if e.schema_path and e.schema_path[0] == fits[0]]
    return min(inner, key=lambda e: -len(e.absolute_path)) if inner else None


def _alternative_text(schema: dict[str, Any]) -> str:
    if schema.get("type") == "object" and schema.get("required"):
        return "a mapping with " + ", ".join(f"{k}:" for k in schema["required"])
    if schema.get("type") == "string":
        return "a path" if "path" in str(schema.get("description", "path")) else "a string"
    return _JSON_TYPES.get(str(schema.get("type")), "a value of another kind")


def _pattern_hint(pattern: str) -> str:
    return _HINTS.get(pattern, f"a value matching {pattern}")


def _did_you_mean(word: Any, known: Iterable[Any]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false"}.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."



# -- where a key was written ---------------------------------------------------------------
class _Locator:
    """Formats a problem as ``file:line:col: model 'm': key.path: problem``."""

    def __init__(self, sources: Sequence[str | Path]):
        self.sources = [str(source) for source in sources]

    @functools.cached_property
    def trees(self) -> list[tuple[str, Any]]:
        """The sources' YAML node trees (with line marks), read only when a problem is placed."""
        trees = []
        for source in self.sources:
            try:
                trees.append((source, yaml.compose(Path(source).read_text(encoding="utf-8"), Loader=_LOADER)))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
        return trees

    def line(self, path: tuple[Any, ...], problem: str, at_key: bool = False) -> str:
        place = self._place(path, at_key)
        text = f"{place}: " if place else ""
        rest = list(path)
        if len(rest) >= 2 and rest[0] == "models":
            text += f"model '{rest[1]}': "
            rest = rest[2:]
        key = "".join(f"[{p}]" if isinstance(p, int) else f"{'.' if i else ''}{p}" for i, p in enumerate(rest))
        return text + (f"{key}: {problem}" if key else problem)

    def _place(self, path: tuple[Any, ...], at_key: bool) -> str | None:
        for name, tree in reversed(self.trees):
            node = _find(tree, path, at_key)
            if node is not None:
                mark = node.start_mark
                return f"{name}:{mark.line + 1}:{mark.column + 1}"
        return None


def _find(node: Any, path: tuple[Any, ...], at_key: bool) -> Any:
    """The YAML node of ``path`` (of its key with ``at_key``), or the nearest parent's key.
    None when the file does not hold the path's first key (another file set it)."""
    key = None
    for i, step in enumerate(path):
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(step)), None)
            if match is None:
                return key
            key, node = match
            if at_key and i == len(path) - 1:
                return key
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
            node = node.value[step]
        else:
            return key
    return node
