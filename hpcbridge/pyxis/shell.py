"""A small, forgiving lexer for batch scripts: simple commands as words (pure).

Enough of bash to find ``srun`` lines and the variables their options come
from: quoting (``'..'``, ``".."``, ``$'..'``, backslashes), comments, line
continuations, ``;``/``&``/``|``/``&&``/``||``/newlines, redirections (dropped),
here-documents (skipped), array assignments ``NAME=(...)``, and expansions kept
as segments (``$VAR``, ``${VAR:-default}``, ``${ARR[@]}``) for
:mod:`hpcbridge.pyxis.scan` to evaluate.  Command substitutions and other
expansions it does not evaluate become :class:`Unknown`.  It never fails: text
it cannot follow yields fewer or odder words, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

_ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "e": "\x1b", "a": "\a"}
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_SEPARATORS = ";&|\n()"


@dataclass(frozen=True)
class Lit:
    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Param:
    """``$NAME``, ``${NAME}``, ``${NAME[@]}``, ``${NAME:-word}`` ..."""

    name: str
    quoted: bool = False
    index: Optional[str] = None  # "@", "*", "0".. for arrays
    op: str = ""  # "", ":-", "-", ":=", "=", ":+", "+"
    arg: tuple[Seg, ...] = ()


@dataclass(frozen=True)
class Unknown:
    """An expansion evaluated only at run time (``$(..)``, backticks, ``${x%..}``...)."""

    text: str
    quoted: bool = False


Seg = Union[Lit, Param, Unknown]
Word = tuple[Seg, ...]


@dataclass
class Command:
    line: int  # 1-based line of the first word
    words: list[Word] = field(default_factory=list)
    arrays: dict[int, tuple[str, bool, list[Word]]] = field(
        default_factory=dict
    )  # word index -> (name, append, elements)


class _Lexer:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.heredocs: list[tuple[str, bool]] = []

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def commands(self) -> list[Command]:
        out: list[Command] = []
        cur = Command(self.line)
        while self.i < len(self.s):
            ch = self.peek()
            if ch == "\\" and self.peek(1) == "\n":
                self._advance(2)
            elif ch in " \t\r":
                self.i += 1
            elif ch == "#":
                while self.i < len(self.s) and self.peek() != "\n":
                    self.i += 1
            elif ch in _SEPARATORS:
                if ch == "\n":
                    self._advance(1)
                    self._skip_heredocs()
                else:
                    self.i += 1
                out.append(cur)
                cur = Command(self.line)
            elif ch in "<>" or (ch == "&" and self.peek(1) == ">"):
                self._redirection(cur)
            else:
                if not cur.words:
                    cur.line = self.line
                word = self._word()
                if self._array_start(word):
                    name, append = _assign_name(word)
                    self.i += 1
                    cur.arrays[len(cur.words)] = (name, append, self._array_elements())
                cur.words.append(word)
        out.append(cur)
        return [c for c in out if c.words]

    def _advance(self, n: int) -> None:
        self.line += self.s.count("\n", self.i, self.i + n)
        self.i += n

    def _array_start(self, word: Word) -> bool:
        """``NAME=(`` / ``NAME+=(``: an array assignment starts."""
        if self.peek() != "(" or len(word) != 1 or not isinstance(word[0], Lit):
            return False
        return not word[0].quoted and word[0].text.endswith("=") and _assign_name(word)[0] != ""

    def _array_elements(self) -> list[Word]:
        out: list[Word] = []
        while self.i < len(self.s) and self.peek() != ")":
            ch = self.peek()
            if ch in " \t\r\n" or (ch == "\\" and self.peek(1) == "\n"):
                self._advance(2 if ch == "\\" else 1)
            elif ch == "#":
                while self.i < len(self.s) and self.peek() != "\n":
                    self.i += 1
            else:
                out.append(self._word(stop=")"))
        self.i += 1
        return out

    def _redirection(self, cur: Command) -> None:
        if cur.words and _digits(cur.words[-1]):
            cur.words.pop()  # 2>, 1>> : the fd number
        if self.s.startswith("<<", self.i) and not self.s.startswith("<<<", self.i):
            self.i += 2
            strip = self.peek() == "-"
            self.i += 1 if strip else 0
            while self.peek() in " \t":
                self.i += 1
            delim = "".join(_text(self._word()))
            self.heredocs.append((delim, strip))
            return
        while self.i < len(self.s) and self.peek() in "<>&|":
            self.i += 1
        if self.peek() == "-" or self.peek().isdigit():  # >&2, <&-
            while self.peek().isdigit() or self.peek() == "-":
                self.i += 1
            return
        while self.peek() in " \t":
            self.i += 1
        if self.peek() and self.peek() not in _SEPARATORS:
            self._word()  # the target

    def _skip_heredocs(self) -> None:
        for delim, strip in self.heredocs:
            while self.i < len(self.s):
                end = self.s.find("\n", self.i)
                end = len(self.s) if end < 0 else end
                line = self.s[self.i : end]
                self._advance(end - self.i + (1 if end < len(self.s) else 0))
                if (line.lstrip("\t") if strip else line) == delim:
                    break
        self.heredocs = []

    def _word(self, stop: str = "") -> Word:
        segs: list[Seg] = []
        while self.i < len(self.s):
            ch = self.peek()
            if ch in " \t\r\n;&|<>" or ch in stop or (ch in "()" and not segs):
                break
            if ch == "\\":
                if self.peek(1) == "\n":
                    self._advance(2)
                else:
                    segs.append(Lit(self.peek(1), True))
                    self.i += 2
            elif ch == "'":
                end = self.s.find("'", self.i + 1)
                end = len(self.s) if end < 0 else end
                segs.append(Lit(self.s[self.i + 1 : end], True))
                self._advance(end + 1 - self.i)
            elif ch == "$" and self.peek(1) == "'":
                segs.append(Lit(self._ansi(), True))
            elif ch == '"':
                self.i += 1
                segs.extend(self._double())
            elif ch == "$":
                segs.append(self._dollar(False))
            elif ch == "`":
                segs.append(Unknown(self._until("`", 1), False))
            elif ch in "()":
                break
            else:
                segs.append(Lit(ch))
                self.i += 1
        return _merge(segs)

    def _ansi(self) -> str:
        self.i += 2
        buf: list[str] = []
        while self.i < len(self.s) and self.peek() != "'":
            if self.peek() == "\\" and self.i + 1 < len(self.s):
                buf.append(_ESC.get(self.peek(1), "\\" + self.peek(1)))
                self.i += 2
            else:
                buf.append(self.peek())
                self.i += 1
        self.i += 1
        return "".join(buf)

    def _double(self) -> list[Seg]:
        segs: list[Seg] = []
        while self.i < len(self.s) and self.peek() != '"':
            ch = self.peek()
            if ch == "\\" and self.peek(1) in '$`"\\\n':
                if self.peek(1) != "\n":
                    segs.append(Lit(self.peek(1), True))
                self._advance(2)
            elif ch == "$":
                segs.append(self._dollar(True))
            elif ch == "`":
                segs.append(Unknown(self._until("`", 1), True))
            else:
                segs.append(Lit(ch, True))
                self._advance(1)
        self.i += 1
        return segs

    def _until(self, close: str, skip: int) -> str:
        start = self.i
        self.i += skip
        while self.i < len(self.s) and self.peek() != close:
            self.i += 2 if self.peek() == "\\" else 1
        self._advance_lines(start)
        self.i += 1
        return self.s[start : self.i]

    def _advance_lines(self, start: int) -> None:
        self.line += self.s.count("\n", start, self.i)

    def _balanced(self, open_: str, close: str) -> str:
        """From an opening bracket at ``self.i`` to its match (quotes skipped roughly)."""
        start, depth = self.i, 0
        while self.i < len(self.s):
            ch = self.peek()
            if ch == "\\":
                self.i += 2
                continue
            if ch == "'" and open_ == "(":
                end = self.s.find("'", self.i + 1)
                self.i = len(self.s) if end < 0 else end + 1
                continue
            if ch == open_:
                depth += 1
            elif ch == close:
                depth -= 1
                if depth == 0:
                    self.i += 1
                    break
            self.i += 1
        self._advance_lines(start)
        return self.s[start : self.i]

    def _dollar(self, quoted: bool) -> Seg:
        nxt = self.peek(1)
        if nxt == "(":
            self.i += 1
            return Unknown("$" + self._balanced("(", ")"), quoted)
        if nxt == "{":
            self.i += 1
            return _brace(self._balanced("{", "}")[1:-1], quoted)
        if nxt and (nxt in "@*#?$!-" or nxt.isdigit()):
            self.i += 2
            return Param(nxt, quoted)
        j = self.i + 1
        while j < len(self.s) and self.s[j] in _NAME_CHARS:
            j += 1
        if j == self.i + 1:
            self.i += 1
            return Lit("$", quoted)
        name, self.i = self.s[self.i + 1 : j], j
        return Param(name, quoted)


def _brace(body: str, quoted: bool) -> Seg:
    j = 0
    while j < len(body) and body[j] in _NAME_CHARS:
        j += 1
    name, rest = body[:j], body[j:]
    if not name and body[:1] in ("@", "*"):
        name, rest = body[:1], body[1:]
    if not name:
        return Unknown("${" + body + "}", quoted)
    index: Optional[str] = None
    if rest.startswith("[") and "]" in rest:
        index, rest = rest[1 : rest.index("]")], rest[rest.index("]") + 1 :]
    if not rest:
        return Param(name, quoted, index)
    for op in (":-", ":=", ":+", "-", "=", "+"):
        if rest.startswith(op):
            # the word after the operator, read like double-quoted text (its splitting
            # follows the quoting of the whole ${...})
            arg = _merge(_Lexer(rest[len(op) :])._double())
            return Param(name, quoted, index, op, arg)
    return Unknown("${" + body + "}", quoted)


def _merge(segs: list[Seg]) -> Word:
    out: list[Seg] = []
    for seg in segs:
        if (
            out
            and isinstance(seg, Lit)
            and isinstance(out[-1], Lit)
            and out[-1].quoted == seg.quoted
        ):
            out[-1] = Lit(out[-1].text + seg.text, seg.quoted)
        else:
            out.append(seg)
    return tuple(out)


def _text(word: Word) -> list[str]:
    return [s.text for s in word if isinstance(s, Lit)]


def _digits(word: Word) -> bool:
    return (
        len(word) == 1
        and isinstance(word[0], Lit)
        and not word[0].quoted
        and word[0].text.isdigit()
    )


def _assign_name(word: Word) -> tuple[str, bool]:
    """``NAME`` of a word starting ``NAME=`` / ``NAME+=`` (unquoted), else ``""``."""
    if not word or not isinstance(word[0], Lit) or word[0].quoted:
        return "", False
    head = word[0].text
    eq = head.find("=")
    if eq <= 0:
        return "", False
    name, append = (head[: eq - 1], True) if head[eq - 1] == "+" else (head[:eq], False)
    if not name or name[0].isdigit() or any(c not in _NAME_CHARS for c in name):
        return "", False
    return name, append


def assignment(word: Word) -> Optional[tuple[str, bool, Word]]:
    """(name, append, value word) of ``NAME=value`` / ``NAME+=value``, else None."""
    name, append = _assign_name(word)
    if not name:
        return None
    first = word[0]
    assert isinstance(first, Lit)
    rest = first.text[first.text.index("=") + 1 :]
    value: tuple[Seg, ...] = ((Lit(rest),) if rest else ()) + word[1:]
    return name, append, value


def commands(text: str) -> list[Command]:
    """The simple commands of ``text`` (see the module docstring)."""
    return _Lexer(text).commands()
