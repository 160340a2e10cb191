"""Environment substitution for ``-- +goose ENVSUB ON`` lines.

goose expands one line at a time with a POSIX-style grammar: ``$VAR``, ``${VAR}``,
``${VAR:-default}`` (unset or empty), ``${VAR-default}`` (unset only), ``${VAR?message}``
(error when unset), ``${VAR:offset[:length]}``. ``\\$`` and ``$$`` stand for a literal ``$``;
``\\\\`` and ``$(`` pass through unchanged. A ``$`` followed by anything that is not a
letter or ``{`` is an error, as in goose, so ENVSUB sections must not hold dollar quotes.
"""

from __future__ import annotations

from collections.abc import Mapping


class SubstitutionError(ValueError):
    """The line cannot be expanded; the message names the variable or the bad syntax."""


def substitute(line: str, env: Mapping[str, str]) -> str:
    return _Expander(line, env).expression(stop="")


class _Expander:
    def __init__(self, text: str, env: Mapping[str, str]):
        self.text = text
        self.pos = 0
        self.env = env

    def expression(self, stop: str) -> str:
        """Expand text up to (not including) a character in ``stop`` or the end."""
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
                out.append(self._expansion())
            else:
                out.append(self._plain_text(stop))
        return "".join(out)

    def _plain_text(self, stop: str) -> str:
        start = self.pos
        self.pos += 1  # the first character is text whatever it is ("\" or a final "$")
        while self.pos < len(self.text) and self.text[self.pos] not in "$\\" + stop:
            self.pos += 1
        return self.text[start : self.pos]

    def _expansion(self) -> str:
        self.pos += 1  # "$"
        if self._peek() == "{":
            self.pos += 1
            return self._braced()
        return self.env.get(self._identifier(), "")

    def _braced(self) -> str:
        name = self._identifier()
        operator = self._take()
        if operator == "}":
            return self.env.get(name, "")
        if operator == ":" and self._peek() == "-":
            self.pos += 1
            operator = ":-"
        value = self.env.get(name)
        if operator == ":-":
            fallback = self.expression(stop="}")
            result = value if value else fallback
        elif operator == "-":
            fallback = self.expression(stop="}")
            result = fallback if value is None else value
        elif operator == "?":
            message = self.expression(stop="}")
            if value is None:
                raise SubstitutionError(f"${name}: {message or 'not set'}")
            result = value
        elif operator == ":":
            result = self._substring(value or "")
        else:
            shown = operator or "end of line"
            raise SubstitutionError(f"expected an operator after ${{{name}, got {shown!r}")
        closing = self._take()
        if closing != "}":
            raise SubstitutionError(f"expected '}}' to close ${{{name}, got {closing or 'end of line'!r}")
        return result

    def _substring(self, value: str) -> str:
        offset = self._integer("offset", until=":}")
        length: int | None = None
        if self._peek() == ":":
            self.pos += 1
            length = self._integer("length", until="}")
        start = min(max(offset + len(value) if offset < 0 else offset, 0), len(value))
        if length is None:
            return value[start:]
        end = start + length if length >= 0 else max(length + len(value), start)
        return value[start : min(end, len(value))]

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
