"""Environment substitution for ``-- +goose ENVSUB ON`` lines.

goose expands one line at a time with a POSIX-style grammar: ``$VAR``, ``${VAR}``,
``${VAR:-default}`` (unset or empty), ``${VAR-default}`` (unset only), ``${VAR?message}``
(error when unset), ``${VAR:offset[:length]}`` (counting UTF-8 bytes, as goose does: the
halves of a character cut by two substrings join again, a lone half is refused).
``\\$`` and ``$$`` stand for a literal ``$``; ``\\\\`` and ``$(`` pass through unchanged. A
``$`` followed by anything that is not a letter or ``{`` is an error, as in goose, so ENVSUB
sections must not hold dollar quotes. As in goose, a default or message is checked for
syntax always but evaluated only when it is used: ``${SET:-${UNSET?}}`` is ``$SET``.
"""

from __future__ import annotations

from collections.abc import Mapping

from migrator.errors import InputError


class SubstitutionError(InputError):
    """The line cannot be expanded; the message names the variable or the bad syntax."""


def substitute(line: str, env: Mapping[str, str]) -> str:
    expander = _Expander(line, env)
    expanded = expander.expression(stop="")
    try:
        # Bytes a substring cut off a character travel as surrogate escapes until here, where
        # goose's bytes are joined: halves that meet again make the character.
        return expanded.encode(errors="surrogateescape").decode()
    except UnicodeError:
        raise SubstitutionError(expander.why_not_utf8()) from None


class _Expander:
    def __init__(self, text: str, env: Mapping[str, str]):
        self.text = text
        self.pos = 0
        self.env = env
        self.cut_names: list[str] = []

    def why_not_utf8(self) -> str:
        if self.cut_names:
            return (
                f"${{{self.cut_names[0]}:...}} cuts a multi-byte character: goose counts bytes,"
                " and would send invalid UTF-8"
            )
        return "a variable's value is not UTF-8: goose would send it as it is, and PostgreSQL refuse it"

    def expression(self, stop: str, *, used: bool = True) -> str:
        """Expand text up to (not including) a character in ``stop`` or the end. Text that
        is not ``used`` is only parsed: what it would fail on when expanded is not raised."""
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            rest = text[self.pos :]
            char = rest[0]
            if char in stop:
                break
            if rest.startswith("\\\\"):
                out.append("\\\\")
                self.pos += 2
            elif rest.startswith(("\\$", "$$")):
                out.append("$")
                self.pos += 2
            elif rest.startswith("$("):
                out.append("$(")
                self.pos += 2
            elif char == "$" and self.pos < len(text) - 1:
                out.append(self._expansion(used))
            else:
                out.append(self._plain_text(stop))
        return "".join(out)

    def _plain_text(self, stop: str) -> str:
        start = self.pos
        self.pos += 1  # the first character is text whatever it is ("\" or a final "$")
        while self.pos < len(self.text) and self.text[self.pos] not in "$\\" + stop:
            self.pos += 1
        return self.text[start : self.pos]

    def _expansion(self, used: bool) -> str:
        self.pos += 1  # "$"
        if self._peek() == "{":
            self.pos += 1
            return self._braced(used)
        return self.env.get(self._identifier(), "")

    def _braced(self, used: bool) -> str:
        name = self._identifier()
        operator = self._take()
        if operator == "}":
            return self.env.get(name, "")
        if operator == ":" and self._peek() == "-":
            self.pos += 1
            operator = ":-"
        value = self.env.get(name)
        if operator == ":-":
            fallback = self.expression(stop="}", used=used and not value)
            result = value if value else fallback
        elif operator == "-":
            fallback = self.expression(stop="}", used=used and value is None)
            result = fallback if value is None else value
        elif operator == "?":
            message = self.expression(stop="}", used=used and value is None)
            if value is None and used:
                raise SubstitutionError(f"${name}: {message or 'not set'}")
            result = value or ""
        elif operator == ":":
            result = self._substring(name, value or "", used)
        else:
            shown = operator or "end of line"
            raise SubstitutionError(f"expected an operator after ${{{name}, got {shown!r}")
        closing = self._take()
        if closing != "}":
            raise SubstitutionError(f"expected '}}' to close ${{{name}, got {closing or 'end of line'!r}")
        return result

    def _substring(self, name: str, value: str, used: bool) -> str:
        """goose's offsets and lengths count UTF-8 bytes, so this does too; a cut inside a
        character leaves bytes that only the rest of the line can complete."""
        offset = self._integer("offset", until=":}")
        length: int | None = None
        if self._peek() == ":":
            self.pos += 1
            length = self._integer("length", until="}")
        encoded = value.encode(errors="surrogateescape")
        start = min(max(offset + len(encoded) if offset < 0 else offset, 0), len(encoded))
        if length is None:
            end = len(encoded)
        else:
            end = min(start + length if length >= 0 else max(length + len(encoded), start), len(encoded))
        piece = encoded[start:end]
        if used and _is_utf8(encoded) and not _is_utf8(piece):
            self.cut_names.append(name)
        return piece.decode(errors="surrogateescape")

    def _integer(self, what: str, until: str) -> int:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in until:
            self.pos += 1
        raw = self.text[start : self.pos].strip()
        try:
            return int(raw)
        except ValueError:
            raise SubstitutionError(f"unable to parse substring {what} {raw!r}") from None

    def _identifier(self) -> str:
        first = self._peek()
        if not first.isalpha():
            shown = first or "end of line"
            raise SubstitutionError(f"expected a variable name to start with a letter, got {shown!r}")
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _take(self) -> str:
        char = self._peek()
        self.pos += len(char)
        return char


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True
