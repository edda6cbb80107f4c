"""The config's companions, kept apart from ``digest.config`` (which imports this module, never the reverse) so
the schema stays short: problems and their wording (the line a key path is on, pydantic errors in plain text),
the env file that holds the secrets (read and written), and the starter files `digest init` writes.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import secrets
import shlex
import stat
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from digest.errors import ConfigError

__all__ = [
    "ENV_FILE_TEMPLATE", "STARTER_CONFIG", "ConfigProblem", "ConfigValidationError", "Loc", "closest",
    "error_records", "file_text", "format_loc", "key_lines", "line_of", "located", "parse_env_text", "problem_record",
    "pydantic_message", "read_env_file", "schema_at", "show", "too_deep", "value_range", "write_env_file",
    "write_starter_config",
]  # fmt: skip

# Keys people reach for when they mean to put a secret in the file; each maps to the indirection to use.
_SECRET_KEYS = {
    "password": "password_env",
    "passwd": "password_env",
    "smtp_password": "password_env",
    "pass": "password_env",
    "secret": "secret_env",
    "token": "secret_env",
    "api_key": "secret_env",
}


# ---------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One invalid key: where it is (file, 1-based line or None, key path) and what was wrong."""

    file: str
    line: int | None
    path: str  # e.g. "users[2].keywords[0]"; "" for a problem with the file itself
    message: str  # "<what was expected>, got <what was found>"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigValidationError(ConfigError):
    """The config file is invalid; ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: list[ConfigProblem], hint: str = "") -> None:
        hint = hint or "fix the keys above; config.example.toml documents every key"
        super().__init__("\n".join(str(p) for p in problems), hint)
        self.problems = problems


def problem_record(problem: ConfigProblem, hint: str = "") -> dict[str, Any]:
    """One problem as `digest check --json` prints it: file, line (or None), key (path), message, hint."""
    return {"file": problem.file, "line": problem.line, "key": problem.path, "message": problem.message,
            "hint": hint}  # fmt: skip


def error_records(exc: ConfigError, file: str | None = None) -> list[dict[str, Any]]:
    """The problems a ConfigError reports, as records: one per located problem of a ConfigValidationError (each
    with the error's hint), else one for the whole error (``file``, no line or key)."""
    problems = getattr(exc, "problems", None)
    if problems:
        return [problem_record(p, exc.hint) for p in problems]
    return [{"file": file, "line": None, "key": "", "message": exc.message, "hint": exc.hint}]


def show(value: Any, *, typed: bool = False) -> str:
    """A short TOML-ish rendering of a found value; ``typed`` adds its TOML type to scalars."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        text = text if len(text) <= 60 else text[:57] + '…"'
        return f"{text} (a string)" if typed else text
    if isinstance(value, int | float):
        kind = "an integer" if isinstance(value, int) else "a float"
        return f"{value!r} ({kind})" if typed else repr(value)
    return f"a {type(value).__name__} ({value})"


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` most likely meant (same letters in another case first), or None."""
    choices = list(choices)
    lowered = {c.casefold(): c for c in choices}
    if word.casefold() in lowered:
        return lowered[word.casefold()]
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------- line finding


Loc = tuple[str | int, ...]
_TOKEN = re.compile(
    r"""(?P<nl>\n)|[ \t\r]+|\#[^\n]*
    |(?P<str>\"\"\"(?:\\.|[^\\])*?"{3,5}|'''[\s\S]*?'{3,5}|"(?:\\.|[^"\\\n])*"|'[^'\n]*')
    |(?P<punct>[\[\]{},=])|(?P<bare>[^\s\#\[\]{},="']+|.)""",
    re.VERBOSE | re.DOTALL,
)


def key_lines(text: str) -> dict[Loc, int]:
    """Map each key path the file spells out (tables, keys, array items) to the line defining it."""
    toks: list[tuple[str, str, int, int]] = []  # (kind, text, line, offset); kind is the punctuation itself
    line = 1
    for m in _TOKEN.finditer(text):
        if m.lastgroup:
            toks.append((m[0] if m.lastgroup == "punct" else m.lastgroup, m[0], line, m.start()))
        line += m[0].count("\n")
    toks.append(("eof", "", line, len(text)))
    lines: dict[Loc, int] = {}
    arrays: dict[Loc, int] = {}  # arrays of tables seen so far -> their length
    pos = 0

    def kind(ahead: int = 0) -> str:
        return toks[min(pos + ahead, len(toks) - 1)][0]

    def keys(stop: str) -> list[str]:
        nonlocal pos
        parts: list[str] = []
        while kind() not in (stop, "nl", "eof"):
            k, raw = toks[pos][:2]
            if k == "str":
                try:
                    parts.append(str(tomllib.loads(f"k = {raw}")["k"]))
                except tomllib.TOMLDecodeError:
                    parts.append(raw[1:-1])
            else:
                parts += [p for p in raw.split(".") if p]
            pos += 1
        return parts

    def skip(*kinds: str) -> None:
        nonlocal pos
        while kind() in kinds:
            pos += 1

    def value(path: Loc) -> None:
        nonlocal pos
        if kind() in ("[", "{"):
            close, index = "]" if kind() == "[" else "}", 0
            pos += 1
            while True:
                skip("nl", ",")
                if kind() in (close, "eof"):
                    pos += 1
                    return
                if close == "]":
                    item: Loc = (*path, index)
                    index += 1
                else:
                    item = (*path, *keys("="))
                    pos += 1
                lines[item] = toks[pos][2]
                value(item)
        else:  # a scalar, possibly two bare tokens (a date and a time)
            while kind() not in ("nl", ",", "]", "}", "eof"):
                pos += 1

    def define(path: Loc, line: int) -> None:
        for end in range(1, len(path)):  # tables made implicitly by a dotted key or header
            lines.setdefault(path[:end], line)
        lines[path] = line

    def resolve(parts: list[str]) -> Loc:
        out: list[str | int] = []
        for part in parts:
            out.append(part)
            if tuple(out) in arrays:
                out.append(arrays[tuple(out)] - 1)
        return tuple(out)

    table: Loc = ()
    while kind() != "eof":
        if kind() == "[":
            header_line, double = toks[pos][2], kind(1) == "[" and toks[pos + 1][3] == toks[pos][3] + 1
            pos += 2 if double else 1
            parts = keys("]")
            if double and parts:
                base = (*resolve(parts[:-1]), parts[-1])
                arrays[base] = arrays.get(base, 0) + 1
                table = (*base, arrays[base] - 1)
            else:
                table = resolve(parts)
            define(table, header_line)
        elif kind() != "nl":
            path = (*table, *keys("="))
            define(path, toks[pos][2])
            pos += 1
            value(path)
        while kind() not in ("nl", "eof"):
            pos += 1
        skip("nl")
    return lines


MAX_DEPTH = 100  # arrays and inline tables; tomllib itself gives up (RecursionError) a few hundred levels down


def too_deep(file: str, text: str) -> ConfigProblem:
    """The problem for a file tomllib cannot read for its nesting: the line where arrays or inline tables get
    deeper than any setting needs, and the key path there."""
    message = "expected valid TOML, got arrays or inline tables nested too deeply to read"
    depth, line = 0, 1
    for m in _TOKEN.finditer(text):
        line += m[0].count("\n")
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(m[0], 0) if m.lastgroup == "punct" else 0
        if depth > MAX_DEPTH:
            break
    else:
        return ConfigProblem(file, None, "", message)
    lines = text.split("\n")
    head = lines[line - 1].split("=", 1)[0] if "=" in lines[line - 1] else "_"
    # The key path of that line: the usual scanner, on the file up to that line with the deep value cut off.
    found = key_lines("\n".join([*lines[: line - 1], f"{head}= 0"]))
    path = max((loc for loc, n in found.items() if n == line), key=len, default=())
    return ConfigProblem(file, line, format_loc(path), f"{message} (at most {MAX_DEPTH} levels)")


def line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of ``loc``, else of its nearest enclosing key or table that the file spells out."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def format_loc(loc: Loc) -> str:
    """A key path as the user writes it: ``("users", 2, "email")`` -> ``users[2].email``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def located(file: str, text: str, found: list[tuple[Loc, str]]) -> list[ConfigProblem]:
    """Attach file and line to each (key path, message), in file order; the file is scanned only if needed."""
    lines = key_lines(text) if found else {}
    problems = [ConfigProblem(file, line_of(loc, lines), format_loc(loc), msg) for loc, msg in found]
    return sorted(problems, key=lambda p: (p.line or 0, p.path))


def file_text(path: Path) -> str:
    """The text of a loaded config file, to find the lines of problems found later; "" when it cannot be read
    any more (the problems then carry no line)."""
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


# ---------------------------------------------------------------------------------------------- translating errors


def schema_at(root: type[BaseModel], loc: Loc) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model of the table at ``loc`` under ``root`` (None for a plain value) and the field ``loc`` names."""
    model: type[BaseModel] | None = root
    field: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None, None
        field = model.model_fields[part]
        ann: Any = field.annotation
        while get_origin(ann) in (tuple, Annotated):
            ann = get_args(ann)[0]
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model, field


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "tuple_type": "an array",
    "list_type": "an array",
    "model_type": "a table",
    "dict_type": "a table",
    "is_instance_of": "a string (a path)",
    "path_type": "a string (a path)",
}


def _tidy(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def value_range(field: FieldInfo | None) -> str | None:
    """A number field's bounds in words ("a whole number from 0 to 3650"), or None when it has no upper bound."""
    if field is None:
        return None
    lower, upper, above = None, None, False
    for item in field.metadata:
        lower = getattr(item, "ge", lower)
        if getattr(item, "gt", None) is not None:
            lower, above = item.gt, True
        upper = getattr(item, "le", upper)
    if upper is None:
        return None
    kind = "a whole number" if field.annotation is int else "a number"
    if lower is None:
        return f"{kind} up to {_tidy(upper)}"
    return (
        f"{kind} above {_tidy(lower)} and up to {_tidy(upper)}"
        if above
        else f"{kind} from {_tidy(lower)} to {_tidy(upper)}"
    )


def pydantic_message(err: Any, root: type[BaseModel]) -> str:
    """Turn one pydantic error, raised validating the model ``root``, into "<expected>, got <found>"."""
    kind, loc, ctx, found = err["type"], tuple(err["loc"]), err.get("ctx") or {}, err.get("input")
    key = str(loc[-1]) if loc else ""
    if kind == "config":
        return str(ctx["text"])
    if kind == "extra_forbidden":
        if key.casefold() in _SECRET_KEYS:
            return (
                f'expected {_SECRET_KEYS[key.casefold()]} = "NAME_OF_AN_ENV_VAR", got a secret in the file '
                f"(value not shown): secrets are only read from environment variables"
            )
        model = schema_at(root, loc[:-1])[0]
        known = list(model.model_fields) if model else []
        near = closest(key, known)
        if near:
            return f'expected a known key (did you mean "{near}"?), got unknown key "{key}"'
        return f'expected one of {", ".join(known)}, got unknown key "{key}"'
    if kind == "missing":
        field = schema_at(root, loc)[1]
        return (
            f"expected {field.description if field and field.description else 'a value'}, got nothing "
            "(the key is required)"
        )
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        near = closest(str(found), options) if isinstance(found, str) else None
        tip = f' (did you mean "{near}"?)' if near else ""
        return f"expected one of {', '.join(json.dumps(o) for o in options)}{tip}, got {show(found, typed=True)}"
    bounds = {
        "greater_than_equal": ">= {ge}",
        "greater_than": "> {gt}",
        "less_than_equal": "<= {le}",
        "less_than": "< {lt}",
    }
    if kind in (*bounds, "finite_number"):
        span = value_range(schema_at(root, loc)[1])
        if span:
            return f"expected {span}, got {show(found)}"
    if kind in bounds:
        tidy = {k: _tidy(v) for k, v in ctx.items()}
        return f"expected a number {bounds[kind].format(**tidy)}, got {show(found)}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s), got {show(found) if found else 'none'}"
    if kind == "string_pattern_mismatch" and key == "host":
        return f"expected a host name or address without spaces, got {show(found)}"
    field = schema_at(root, loc)[1]
    expected = _EXPECTED.get(kind) or (field.description if field and field.description else None)
    if expected:
        if kind in ("tuple_type", "list_type") and field and field.description:
            expected = f"an array of {field.description}"
        return f"expected {expected}, got {show(found, typed=True)}"
    return f"expected a valid value ({err['msg']}), got {show(found)}"


# ---------------------------------------------------------------------------------------------- the env file


_ENV_LINE = re.compile(r"(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)", re.DOTALL)
_AFTER_QUOTE = re.compile(r"[ \t]*(#.*)?")


def _env_value(raw: str) -> str | None:
    """The value of one assignment: quoted ('literal' or "with \\ escapes") or the rest of the line; None when a
    quote is not closed or text follows the closing quote."""
    if not raw or raw[0] not in "'\"":
        return raw
    quote, i = raw[0], 1
    out: list[str] = []
    while i < len(raw):
        ch = raw[i]
        if ch == quote:
            return "".join(out) if _AFTER_QUOTE.fullmatch(raw, i + 1) else None
        if quote == '"' and ch == "\\" and i + 1 < len(raw) and raw[i + 1] in '"\\$`':
            i += 1
            ch = raw[i]
        out.append(ch)
        i += 1
    return None


def parse_env_text(text: str, file: str) -> tuple[dict[str, str], list[ConfigProblem]]:
    """KEY=VALUE lines (``export `` allowed, # comments, blank lines, optional quotes; the last assignment of a
    key wins) and a problem per line that is none of these. Values are never echoed: they are secrets."""
    values: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if not match:
            problems.append(
                ConfigProblem(
                    file,
                    number,
                    "",
                    "expected KEY=VALUE (a variable name, =, its value), "
                    "got a line that is not one (not shown, it may hold a secret)",
                )
            )
            continue
        value = _env_value(match[2])
        if value is None:
            problems.append(
                ConfigProblem(
                    file,
                    number,
                    match[1],
                    "expected a value whose closing quote ends the "
                    "line (values cannot span lines), got something else (not shown)",
                )
            )
            continue
        values[match[1]] = value
    return values, problems


def read_env_file(path: Path, *, required: bool = False) -> dict[str, str]:
    """The KEY=VALUE pairs of the env file at ``path``; {} when it does not exist (unless ``required``). A file
    that other users can read or write is refused: it holds the secrets."""
    try:
        with open(path, "rb") as handle:
            mode, data = os.fstat(handle.fileno()).st_mode, handle.read()
    except FileNotFoundError:
        if not required:
            return {}
        raise ConfigError(
            f"env file {path} (named by [digest].env_file) not found",
            "create it (mode 600) with KEY=VALUE lines, or remove [digest].env_file",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read env file {path}: {exc.strerror}", "it should be a file you own, mode 600"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"env file {path} is not UTF-8 text", "write it as KEY=VALUE lines in UTF-8") from None
    values, problems = parse_env_text(text, str(path))
    if problems:
        raise ConfigValidationError(
            problems, "write KEY=VALUE lines (# starts a comment line; quote a value to keep spaces at its ends)"
        )
    if values and os.name == "posix" and mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(
            f"env file {path} holds secrets but every user may read or change it (mode {stat.S_IMODE(mode):o})",
            f"chmod 600 {shlex.quote(str(path))}",
        )
    return values


# ---------------------------------------------------------------------------------------------- starter files


def _read_starter() -> str:
    # Installed wheels carry it as package data; a checkout has it at the repository root.
    try:
        return resources.files("digest").joinpath("config.example.toml").read_text("utf-8")
    except OSError:
        pass
    try:
        return (Path(__file__).resolve().parents[2] / "config.example.toml").read_text("utf-8")
    except OSError:
        return ""  # neither packaged nor in a checkout: write_starter_config reports it


STARTER_CONFIG: str = _read_starter()


def _link_no_clobber(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)  # fails if someone created the file meanwhile: never clobber
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: the exists() check above is the best we have
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(tmp, path)


def write_starter_config(path: Path, *, force: bool = False) -> Path:
    """Write the commented starter config to ``path`` atomically; refuse to replace a file unless ``force``."""
    path = Path(path).expanduser()
    if not STARTER_CONFIG:
        raise ConfigError("the starter config is missing from this installation", "reinstall paper-digest")
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", "edit it, or pass --force to replace it with the starter")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(STARTER_CONFIG)
                out.flush()
                os.fsync(out.fileno())
            if force:
                os.replace(tmp, path)
            else:
                _link_no_clobber(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except FileExistsError:
        raise ConfigError(f"{path} already exists", "edit it, or pass --force to replace it") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}", "check the folder exists and is writable") from None
    return path.resolve()


ENV_FILE_TEMPLATE = """\
# paper-digest secrets. Every digest command reads this file itself (cron, systemd and manual runs alike);
# a variable set in the real environment wins over the same name here. KEY=VALUE lines, # comments.
# Keep it private (mode 600). Values are read literally: quote a value to keep spaces at its ends.

# Signs Message-IDs and unsubscribe links ([digest].secret_env). Keep it stable: a new one changes them.
DIGEST_SECRET={secret}

# The SMTP password ([smtp].password_env), needed when [smtp].username is set:
# DIGEST_SMTP_PASSWORD=

# Webhook URLs and Matrix access tokens ([[webhooks]] url_env, token_env), one line per variable named there:
# LAB_SLACK_WEBHOOK=https://hooks.slack.com/services/...
"""


def write_env_file(path: Path) -> bool:
    """Create the env file at ``path`` (mode 600) with a fresh random DIGEST_SECRET; an existing file is never
    touched (the secret must stay stable). True when the file was created."""
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}", "check the folder exists and is writable") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(ENV_FILE_TEMPLATE.format(secret=secrets.token_urlsafe(32)))
        out.flush()
        os.fsync(out.fileno())
    return True
