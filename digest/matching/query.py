"""The keyword query language: text normalisation (with an offset map), the parser and its AST.

## Keyword queries

Each entry of a profile's `keywords` is a query; a paper is picked when **any** of them matches, and
dropped when any query in `exclude` matches. Matching ignores case and Unicode variants (NFKC +
case folding on both the query and the paper).

- `GAN`: the whole word only: "GAN", "GANs", never "organ".
- `LLM`: "LLM", "LLMs" (a trailing *s*/*es* on the paper's word is tolerated), never "LLMOps".
- `"self-supervised"`: the words in order. Hyphen, en dash, underscore, slash and whitespace are all the
  same separator, so it also matches "self supervised" and "self_supervised"; other punctuation between
  two words (a comma, a full stop) breaks a phrase.
- `self-supervised`: an unquoted hyphenated term is the same as the quoted phrase (so are `GPT-4`, `TCP/IP`).
- `diffus*`: words starting with "diffus" (diffusion, diffusing). `*` only at the end of a word or phrase.
- `diffusion video`: both words (implicit AND); `diffusion AND video` is the same.
- `diffusion OR flow`: either word. AND binds tighter than OR.
- `diffusion -video` or `diffusion NOT video`: diffusion, but not papers that mention video.
- `(diffusion OR flow) -video`: parentheses group.
- `title:agent` (or `ti:agent`): only in the title. Also `abstract:` (`abs:`) and `org:` (the
  organization's display name and its Hugging Face handle: `org:meta` and `org:facebook` both find
  "AI at Meta"). Without a field a term looks in the title and the abstract.
- `title:(agent OR planner)`: a field scope applies to a whole group.
- `author:lecun` (or `au:`): a paper whose author list has the name; see *Authors* below.
- `/gpt-?4o?/`: an opt-in regular expression ([regex](https://pypi.org/project/regex/) syntax,
  case-insensitive, on the original text, at most 200 characters). A pattern that runs longer than
  0.05 s on one paper counts as no match there and is logged; after 3 such timeouts in a run it is skipped.

Operators `OR`, `AND`, `NOT` must be written in capitals (lower-case "or" is a word to look for).
A query that is empty or only excludes (`-video`, `NOT video`) is rejected, as it would match almost
every paper; put exclusions in `exclude` instead. A syntax error names the position, e.g.
`unclosed quote at character 11` with a caret under the quote. `C++` and `C#` are words of their own.
Plural tolerance works one way: `LLMs` does not match "LLM". A profile without keywords whose
`organizations_mode` is "only" receives every paper from its organizations.

**Ranking.** Each distinct term found in a title scores 3, in an abstract 1, in `org:` 1, plus
0.5 × ln(count) for repeats; an organization listed in the profile (mode "boost") adds 2. Papers are
ordered by score, then upvotes, then newest first, then dump order. `min_score` and `min_upvotes`
filter; `organizations` with mode "only" keeps just papers from those organizations. An entry may be
the organization's Hugging Face handle or its display name ("facebook" or "AI at Meta"), compared
without case, spaces or punctuation, so "huggingface" also matches "Hugging Face". Each match says
why in one line, e.g. `title: "diffusion"; abstract: "LLM" ×3, "self-supervised"` (keywords in A-Z
order).

**Authors.** `author:` compares names, not text: case and accents are ignored ("Müller" = "Muller" =
"MULLER"; also ø, ł, æ, ß), and so are dots, hyphens and apostrophes between name parts. A single word
matches any author with that whole name part: `author:li` finds "Fei-Fei Li" and "Li Deng", never "Lin"
or "Oliveira"; `author:hinton*` finds names with a part starting "hinton". A full name matches the name in
order, with initials standing for first names either way: `author:"Yann LeCun"` finds "Yann LeCun", "Y.
LeCun" and "Y LeCun" (not "Yoshua LeCun"), `author:"Y. LeCun"` finds all three and "Yoshua LeCun". Middle
names may be missing from the paper ("Geoffrey Hinton" finds "Geoffrey E. Hinton"); a middle initial you
write may be missing too ("Geoffrey E. Hinton" finds "Geoffrey Hinton"). Name parts joined by a hyphen or
a space are the same, and a compound surname alone works: `author:Ruiz-Garcia` finds "María Ruiz García";
`author:"van der Maaten"` finds "Laurens van der Maaten" (van, von, de, der, di, da, le... belong to the
surname, so "L. van der Maaten" works). An author hit scores 3, like a title hit, and reads `author:
"Yann LeCun"` in the reason. A profile's `authors` list follows people (each entry a name, matched the same
way): any paper by one of them matches, with or without a keyword, scoring 2 more (reason `follows: Yann
LeCun`); `exclude` and the limits still apply. Names come from API JSON and HTML dumps only: a text scrape
carries just the number of authors, so `author:` terms and follows never match papers known only from one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex

from digest.errors import QueryError

QUERY_HELP = __doc__[__doc__.index("## Keyword queries") :]  # type: ignore[index]

ANY = "any"  # title + abstract
TITLE = "title"
ABSTRACT = "abstract"
ORG = "org"
AUTHORS = "authors"  # the paper's author names (Hit offsets: the author's index in Paper.authors, index + 1)
FOLLOWS = "follows"  # a profile's followed authors (the hits of their witnesses are AUTHORS hits)
FIELDS = {"title": TITLE, "ti": TITLE, "abstract": ABSTRACT, "abs": ABSTRACT, "org": ORG, "author": AUTHORS,
          "au": AUTHORS}  # fmt: skip
MAX_REGEX_LENGTH = 200

# A token is a run of letters/digits; "C++" and "C#" keep their suffix so they are words of their own.
_TOKEN_RE = re.compile(r"[^\W_]+(?:(?:\+\+|#)(?![^\W_]))?")
# Separators that join the words of a phrase; anything else between two words is a hard break.
_SOFT = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029-\u2010\u2011\u2012\u2013_/"
_FIELD_RE = re.compile(r"([A-Za-z]+):")
_OPERATORS = {"OR", "AND", "NOT"}


@dataclass(frozen=True, slots=True)
class Scan:
    """A text as the matcher sees it: words joined by one space (two across hard punctuation).

    ``text`` is ``" w1 w2  w3 "``: it starts and ends with a space so a pattern ``" w"`` can only
    begin at a word start. ``starts[i]`` is where word i begins in ``text``; ``ostarts[i]``/``oends[i]``
    are its span in the original string.
    """

    text: str
    starts: tuple[int, ...]
    ostarts: tuple[int, ...]
    oends: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Term:
    """A word, phrase or prefix; ``pattern`` is its normalised form (``" self supervised"``), for a name (field
    AUTHORS or FOLLOWS) its name parts after "@" (``"@yann lecun"``, see ``author_pattern``)."""

    text: str  # as written, without quotes or field prefix: 'LLM', 'self-supervised', 'diffus*'
    pattern: str
    prefix: bool
    field: str  # ANY | TITLE | ABSTRACT | ORG | AUTHORS | FOLLOWS
    position: int


@dataclass(frozen=True, slots=True)
class Regex:
    """An opt-in ``/pattern/``, matched case-insensitively on the original text with a timeout."""

    text: str  # '/pattern/'
    pattern: str
    field: str
    position: int


@dataclass(frozen=True, slots=True)
class Not:
    """True when its child is false."""

    child: Node
    position: int


@dataclass(frozen=True, slots=True)
class And:
    """True when all children are true."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """True when any child is true."""

    children: tuple[Node, ...]


Node = Term | Regex | Not | And | Or
Leaf = Term | Regex


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed keyword query: the source text and its AST."""

    text: str
    root: Node


def fold(text: str) -> tuple[str, list[int] | None, list[int] | None]:
    """NFKC + casefold ``text``; also return, per output char, the original start/end (None = identity)."""
    if text.isascii():
        return text.lower(), None, None
    if unicodedata.is_normalized("NFKC", text):
        folded = text.casefold()
        if len(folded) == len(text):  # casefold never shrinks, so equal length means 1:1
            return folded, None, None
    # Slow path: fold each base character with its combining marks, remembering where it came from.
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        piece = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text[i:j]).casefold())
        out.append(piece)
        starts.extend([i] * len(piece))
        ends.extend([j] * len(piece))
        i = j
    return "".join(out), starts, ends


def scan_text(text: str) -> Scan:
    """Normalise ``text`` into the word string the matcher searches, with an offset map back to ``text``."""
    folded, fstarts, fends = fold(text)
    parts = [" "]
    pos = 1
    starts: list[int] = []
    ostarts: list[int] = []
    oends: list[int] = []
    prev = -1
    for m in _TOKEN_RE.finditer(folded):
        a, b = m.span()
        if prev >= 0:
            if folded[prev:a].strip(_SOFT):
                parts.append("  ")
                pos += 2
            else:
                parts.append(" ")
                pos += 1
        word = m.group()
        starts.append(pos)
        parts.append(word)
        pos += len(word)
        ostarts.append(a if fstarts is None else fstarts[a])
        oends.append(b if fends is None else fends[b - 1])
        prev = b
    parts.append(" ")
    return Scan("".join(parts), tuple(starts), tuple(ostarts), tuple(oends))


def term_pattern(text: str) -> str:
    """The normalised search pattern of a term or phrase (``" self supervised"``), or "" if it has no words."""
    scanned = scan_text(text).text
    return scanned[:-1] if scanned.strip() else ""


# Letters NFKD does not take apart; the rest of a name is folded by dropping combining marks after NFKD.
_NAME_LETTERS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i"})
_NAME_RE = re.compile(r"[^\W_]+")
_NAME_JOINERS = re.compile(r"['`\u2018\u2019\u02bc\u00b4]")  # O'Brien is one name part
# Surname particles: "Laurens van der Maaten" has the surname "van der maaten" (a first part is never one).
PARTICLES = frozenset(
    {"al", "bin", "da", "das", "de", "del", "della", "den", "der", "di", "do", "dos", "du", "el", "ibn", "la", "le",
     "st", "ten", "ter", "van", "von", "zu"}
)  # fmt: skip


@lru_cache(maxsize=65536)
def name_parts(name: str) -> tuple[str, ...]:
    """A name's parts, case- and accent-folded: "J.-B. Müller-Lüdenscheidt" -> ("j", "b", "muller", "ludenscheidt")."""
    decomposed = unicodedata.normalize("NFKD", name.casefold().translate(_NAME_LETTERS))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return tuple(_NAME_RE.findall(_NAME_JOINERS.sub("", unicodedata.normalize("NFKC", plain).casefold())))


def author_pattern(name: str) -> str:
    """A name term's pattern: "@" and its parts (``"@yann lecun"``), or "" when it has no letters or digits."""
    parts = name_parts(name)
    return "@" + " ".join(parts) if parts else ""


def follow_query(name: str) -> Query:
    """A followed author (a profile's ``authors`` entry) as the one-term query the matcher evaluates; a trailing
    ``*`` makes its last name part a prefix. Raises QueryError for a name without letters or digits."""
    written = name.strip()
    prefix = written.endswith("*")
    pattern = author_pattern(written[:-1] if prefix else written)
    if not pattern:
        raise QueryError(f"author {name!r} has no letters or digits", 'write a name such as "Kaiming He"', position=0)
    return Query(name, Term(written, pattern, prefix, FOLLOWS, 0))


def compile_regex(pattern: str) -> Any:
    """Compile a ``/pattern/`` body the way the matcher runs it (case-insensitive ``regex``)."""
    return _compile_regex(pattern)


@lru_cache(maxsize=4096)
def _compile_regex(pattern: str) -> Any:
    return regex.compile(pattern, regex.IGNORECASE)


def leaves(node: Node) -> Iterator[Leaf]:
    """Every term and regex of a query, left to right."""
    if isinstance(node, Term | Regex):
        yield node
    elif isinstance(node, Not):
        yield from leaves(node.child)
    else:
        for child in node.children:
            yield from leaves(child)


def evaluate(node: Node, truth: Callable[[Leaf], bool]) -> bool:
    """Evaluate a query given the truth of each leaf."""
    if isinstance(node, Term | Regex):
        return truth(node)
    if isinstance(node, Not):
        return not evaluate(node.child, truth)
    if isinstance(node, And):
        return all(evaluate(child, truth) for child in node.children)
    return any(evaluate(child, truth) for child in node.children)


# --- lexer ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(" ")" OR AND NOT - FIELD PHRASE REGEX WORD
    value: str
    position: int


def _error(text: str, position: int, message: str, hint: str) -> QueryError:
    shown = re.sub(r"\s", " ", text)
    caret = " " * position + "^"
    return QueryError(f"{message} at character {position + 1}:\n  {shown}\n  {caret}", hint, position=position)


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            tokens.append(_Token(c, c, i))
            i += 1
        elif c == "-":
            if i + 1 >= n or text[i + 1].isspace() or text[i + 1] == ")":
                raise _error(text, i, "'-' must be followed directly by what it excludes", "write -video, not - video")
            tokens.append(_Token("-", c, i))
            i += 1
        elif c == '"':
            j = text.find('"', i + 1)
            if j < 0:
                raise _error(text, i, "unclosed quote", 'close the phrase with a second ", e.g. "self-supervised"')
            tokens.append(_Token("PHRASE", text[i + 1 : j], i))
            i = j + 1
        elif c == "/":
            j = i + 1
            while j < n and text[j] != "/":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise _error(text, i, "unclosed regular expression", "end it with a second /, e.g. /gpt-?4o?/")
            tokens.append(_Token("REGEX", text[i + 1 : j], i))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '()"':
                j += 1
            word = text[i:j]
            field = _FIELD_RE.match(word)
            if word in _OPERATORS:
                tokens.append(_Token(word, word, i))
                i = j
            elif field and (field.group(1).lower() in FIELDS or field.end() < len(word) or (j < n and text[j] in '("')):
                name = field.group(1).lower()
                if name not in FIELDS:
                    raise _error(
                        text,
                        i,
                        f"unknown field '{field.group(1)}:'",
                        "use title: (ti:), abstract: (abs:), org: or author: (au:)",
                    )
                tokens.append(_Token("FIELD", FIELDS[name], i))
                i += field.end()
                if i >= n or text[i].isspace() or text[i] == ")":
                    example = 'author:lecun or author:"Yann LeCun"' if FIELDS[name] == AUTHORS else "title:diffusion"
                    raise _error(text, i, f"'{field.group(0)}' needs a term right after it", f"write {example}")
            else:
                tokens.append(_Token("WORD", word, i))
                i = j
    return tokens


# --- parser -----------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; a class only to share the cursor between the rules."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def fail(self, token: _Token | None, message: str, hint: str) -> QueryError:
        position = token.position if token else len(self.text)
        return _error(self.text, position, message, hint)

    def parse_or(self, field: str) -> Node:
        children = [self.parse_and(field)]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.i += 1
            children.append(self.parse_and(field))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self, field: str) -> Node:
        children = [self.parse_unary(field)]
        while (token := self.peek()) is not None and token.kind not in ("OR", ")"):
            if token.kind == "AND":
                self.i += 1
            children.append(self.parse_unary(field))
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_unary(self, field: str) -> Node:
        token = self.peek()
        if token is not None and token.kind in ("NOT", "-"):
            self.i += 1
            child = self.parse_unary(field)
            return child.child if isinstance(child, Not) else Not(child, token.position)
        return self.parse_atom(field)

    def parse_atom(self, field: str) -> Node:
        token = self.peek()
        if token is None:
            previous = self.tokens[self.i - 1].value if self.i else ""
            raise self.fail(None, f"expected a term after {previous!r}", "finish the query or remove the operator")
        self.i += 1
        kind = token.kind
        if kind == "FIELD":
            if field != ANY:
                raise self.fail(token, "field scopes cannot be nested", "write title:(a OR b), not title:(abs:a)")
            return self.parse_atom(token.value)
        if kind == "(":
            if (inner := self.peek()) is not None and inner.kind == ")":
                raise self.fail(inner, "empty parentheses", "put a term inside or remove them")
            node = self.parse_or(field)
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise self.fail(token, "'(' is never closed", "add the missing ')'")
            self.i += 1
            return node
        if kind in ("PHRASE", "WORD"):
            return self.term(token, field)
        if kind == "REGEX":
            return self.regex(token, field)
        if kind == ")":
            raise self.fail(token, "unmatched ')'", "remove it or add the '(' it closes")
        raise self.fail(token, f"{token.value} needs a term on both sides", f"write 'a {token.value} b'")

    def term(self, token: _Token, field: str) -> Term:
        written = token.value.strip()
        prefix = written.endswith("*")
        body = written[:-1] if prefix else written
        star = body.find("*")
        if star >= 0 and token.kind == "WORD":
            raise self.fail(
                _Token("", "", token.position + star), "'*' is only allowed at the end of a word", "write diffus*"
            )
        pattern = author_pattern(body) if field == AUTHORS else term_pattern(body)
        if not pattern:
            what = "phrase" if token.kind == "PHRASE" else "term"
            hint = 'write a name, e.g. author:"Yann LeCun"' if field == AUTHORS else "quote or drop it"
            raise self.fail(token, f"{what} {token.value!r} has no letters or digits", hint)
        return Term(written, pattern, prefix, field, token.position)

    def regex(self, token: _Token, field: str) -> Regex:
        body = token.value
        if field == AUTHORS:
            raise self.fail(token, "author: takes names, not regular expressions", 'write author:"Yann LeCun" or le*')
        if not body:
            raise self.fail(token, "empty regular expression", "write /pattern/, e.g. /gpt-?4o?/")
        if len(body) > MAX_REGEX_LENGTH:
            raise self.fail(token, f"regular expression longer than {MAX_REGEX_LENGTH} characters", "shorten it")
        try:
            compile_regex(body)
        except regex.error as exc:
            offset = token.position + 1 + (exc.pos or 0)
            raise _error(self.text, offset, f"invalid regular expression ({exc.msg})", "fix the pattern") from exc
        return Regex(f"/{body}/", body, field, token.position)


# Most keywords are one ASCII word or phrase: those skip the lexer and parser (the same Query, 3x faster).
_SIMPLE_RE = re.compile(r'( *)(?:"([A-Za-z0-9]+(?:[ /_-]+[A-Za-z0-9]+)*)"|([A-Za-z0-9]+(?:[/_-]+[A-Za-z0-9]+)*)) *')
_SIMPLE_SEPARATORS = re.compile(r"[ /_-]+")


@lru_cache(maxsize=65536)
def parse_query(text: str) -> Query:
    """Parse one keyword query; raises QueryError (with the position) when it is invalid or matches everything."""
    simple = _SIMPLE_RE.fullmatch(text)
    if simple and simple.group(3) not in _OPERATORS:
        written = simple.group(2) or simple.group(3)
        pattern = " " + " ".join(_SIMPLE_SEPARATORS.split(written.lower()))
        return Query(text, Term(written, pattern, False, ANY, len(simple.group(1))))
    if not text.strip():
        raise QueryError("empty query", "write at least one term, e.g. diffusion", position=0)
    parser = _Parser(text, _lex(text))
    root = parser.parse_or(ANY)
    if (extra := parser.peek()) is not None:
        raise parser.fail(extra, "unmatched ')'", "remove it or add the '(' it closes")
    if evaluate(root, lambda leaf: False):
        raise _error(
            text,
            0,
            "query matches papers that contain none of its terms (it is only NOT/-)",
            "add a term to look for, e.g. 'diffusion -video'; put exclusions in the profile's exclude list",
        )
    return Query(text, root)


# --- compiled form, as the matcher evaluates it ------------------------------------------------------------

LEAF, _NOT, _AND, _OR = 0, 1, 2, 3

# A compiled query node is a nested tuple (faster to walk than the AST):
# (LEAF, term_id, field, written) | (_NOT, child) | (_AND, children) | (_OR, children)
CompiledNode = tuple[Any, ...]
# Evidence of a match: (term as written, term id, field), in the order found.
Witness = list[tuple[str, int, str]]
# Per paper: term id -> field -> spans (scan offsets for automaton terms, original offsets for regexes).
LeafHits = dict[int, dict[str, list[tuple[int, int]]]]


def compile_node(node: Node, term_ids: dict[tuple[str, bool], int], regex_ids: dict[str, int]) -> CompiledNode:
    """The AST as nested tuples with leaves replaced by ids (faster to evaluate per paper)."""
    if isinstance(node, Term):
        return (LEAF, term_ids[(node.pattern, node.prefix)], node.field, node.text)
    if isinstance(node, Regex):
        return (LEAF, regex_ids[node.pattern], node.field, node.text)
    if isinstance(node, Not):
        return (_NOT, compile_node(node.child, term_ids, regex_ids))
    kind = _AND if isinstance(node, And) else _OR
    return (kind, tuple(compile_node(child, term_ids, regex_ids) for child in node.children))


def leaf_ids(node: CompiledNode) -> list[int]:
    """The leaf ids of a compiled query, left to right."""
    if node[0] == LEAF:
        return [node[1]]
    if node[0] == _NOT:
        return leaf_ids(node[1])
    return [tid for child in node[1] for tid in leaf_ids(child)]


def evaluate_witness(node: CompiledNode, hits: LeafHits) -> Witness | None:
    """None when false, else the positive leaves that made it true (NOT contributes none)."""
    kind = node[0]
    if kind == LEAF:
        found = hits.get(node[1])
        if not found:
            return None
        field = node[2]
        if field == ANY:
            out = [(node[3], node[1], f) for f in (TITLE, ABSTRACT) if f in found]
            return out or None
        return [(node[3], node[1], field)] if field in found else None
    if kind == _NOT:
        return None if evaluate_witness(node[1], hits) is not None else []
    result: Witness | None
    if kind == _AND:
        result = []
        for child in node[1]:
            part = evaluate_witness(child, hits)
            if part is None:
                return None
            result += part
        return result
    result = None
    for child in node[1]:
        part = evaluate_witness(child, hits)
        if part is not None:
            result = part if result is None else result + part
    return result
