"""How a command declares what it takes: each field of its arguments class (arguments.py) says,
once, where its value comes from (a flag, a positional argument, an environment variable, in
that order) and how the text becomes the field's type. The same declaration adds the flag to
the command's parser, writes its help (the variable and the default included, the default
read from the field or from the library's own class) and fills the typed value.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from migrator.errors import InputError

_SOURCE = "migrator.cli.source"
_GROUP = "migrator.cli.group"


class UsageError(InputError):
    """A flag, argument or variable the command line cannot take: nothing was run."""


class Kind(Enum):
    OPTION = "option"  # a flag with a value
    SWITCH = "switch"  # a flag alone: True when given
    REPEATED = "repeated"  # a flag with a value, given any number of times
    ARGUMENT = "argument"  # a positional argument
    VARIABLE = "variable"  # an environment variable only
    ENVIRONMENT = "environment"  # the whole environment (ENVSUB's variables)


@dataclass(frozen=True)
class Where:
    """What a converter names in its error: the flag (or ``command: METAVAR``) and the variables."""

    name: str
    env: tuple[str, ...]


Converter = Callable[[str, Where], Any]


def _text(text: str, where: Where) -> str:
    return text


class _Later:
    """A default made by a factory, written into the help only when the help is printed (the
    factory may import what ``--version`` and the parser itself do not need)."""

    def __init__(self, make: Callable[[], Any]):
        self.make = make

    def __str__(self) -> str:
        return str(self.make())


@dataclass(frozen=True)
class Source:
    """Where a field's value comes from: its flag or argument, its variables, and how its text is read."""

    kind: Kind
    flags: tuple[str, ...] = ()
    help: str = ""
    metavar: str | None = None
    env: tuple[str, ...] = ()
    convert: Converter = _text
    show: Callable[[Any], str] = str  # the default as the help writes it
    choices: tuple[str, ...] | None = None
    optional: bool = False  # a positional argument that may be left out
    everywhere: bool = False  # a global option: every command takes it, before or after its name

    @property
    def takes_value(self) -> bool:
        return self.kind in (Kind.OPTION, Kind.REPEATED)

    def help_text(self, default: Any) -> str:
        said = [f"env {' or '.join(self.env)}"] if self.env else []
        if self.kind is Kind.OPTION and isinstance(default, _Later):
            said.append("default %(later)s")  # argparse fills it in from the action, see add_to
        elif self.kind is Kind.OPTION and default not in (None, "", ()):
            said.append(f"default {self.show(default)}")
        elif self.kind is Kind.OPTION and default is None and self.env:
            said.append("default none")
        return f"{self.help} ({', '.join(said)})" if said else self.help

    def add_to(self, parser: argparse._ActionsContainer, dest: str, default: Any) -> None:
        if self.kind is Kind.ARGUMENT:
            extra: dict[str, Any] = {"nargs": "?"} if self.optional else {}
            parser.add_argument(dest, metavar=self.metavar, help=self.help, choices=self.choices, **extra)
        elif self.kind is Kind.SWITCH:
            parser.add_argument(*self.flags, dest=dest, action="store_true", help=self.help)
        elif self.takes_value:
            action = "append" if self.kind is Kind.REPEATED else "store"
            added = parser.add_argument(
                *self.flags, dest=dest, metavar=self.metavar, action=action, help=self.help_text(default)
            )
            vars(added)["later"] = default

    def value(
        self, parsed: Mapping[str, Any], dest: str, environ: Mapping[str, str], default: Any, command: str
    ) -> Any:
        """The typed value: the flag's, else the first variable set, else ``default``."""
        if self.kind is Kind.ENVIRONMENT:
            return dict(environ)
        given = parsed[dest] if self.kind is not Kind.VARIABLE else None
        if self.kind is Kind.SWITCH:
            return bool(given)
        if self.kind is Kind.REPEATED:
            return tuple(given or ())
        # An empty flag counts as not given where a variable or a default stands behind it.
        text = given if given or (given == "" and not self.env and default is None) else None
        if text is None:
            text = next((environ[name] for name in self.env if environ.get(name)), None)
        if text is None:
            return default
        name = f"{command}: {self.metavar}" if self.kind is Kind.ARGUMENT else (self.flags or self.env)[-1]
        return self.convert(text, Where(name, self.env))


def _env(env: str | tuple[str, ...]) -> tuple[str, ...]:
    return (env,) if isinstance(env, str) else env


def option(
    *flags: str,
    metavar: str,
    help: str,
    default: Any = None,
    env: str | tuple[str, ...] = (),
    convert: Converter = _text,
    show: Callable[[Any], str] = str,
    everywhere: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A flag with a value, read from ``env`` when not given; ``default`` (or what
    ``default_factory`` makes) when neither is."""
    source = Source(Kind.OPTION, flags, help, metavar, _env(env), convert, show, everywhere=everywhere)
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata={_SOURCE: source})
    return dataclasses.field(default=default, metadata={_SOURCE: source})


def switch_source(*flags: str, help: str) -> Source:
    return Source(Kind.SWITCH, flags, help)


def switch(*flags: str, help: str) -> Any:
    return dataclasses.field(default=False, metadata={_SOURCE: switch_source(*flags, help=help)})


def repeated(flag: str, *, metavar: str, help: str) -> Any:
    return dataclasses.field(default=(), metadata={_SOURCE: Source(Kind.REPEATED, (flag,), help, metavar)})


def argument(
    metavar: str,
    help: str,
    *,
    convert: Converter = _text,
    choices: tuple[str, ...] | None = None,
    optional: bool = False,
) -> Any:
    """The command's positional argument; required unless ``optional``."""
    source = Source(Kind.ARGUMENT, (), help, metavar, convert=convert, choices=choices, optional=optional)
    if optional:
        return dataclasses.field(default=None, metadata={_SOURCE: source})
    return dataclasses.field(metadata={_SOURCE: source})


def variable_source(name: str, *, convert: Converter = _text) -> Source:
    return Source(Kind.VARIABLE, env=(name,), convert=convert)


def variable(name: str, *, default: Any = "", convert: Converter = _text) -> Any:
    """A value only the environment gives (the image and Nomad set these)."""
    return dataclasses.field(default=default, metadata={_SOURCE: variable_source(name, convert=convert)})


def environment() -> Any:
    """The whole environment: the variables a migration's ENVSUB section may name."""
    source = Source(Kind.ENVIRONMENT)
    return dataclasses.field(default_factory=dict, repr=False, compare=False, metadata={_SOURCE: source})


def group(of: type, **members: Source) -> Any:
    """A value of the library's class ``of`` made of several flags: each member is one of its
    fields, whose default stays the one ``of`` declares."""
    return dataclasses.field(default_factory=of, metadata={_GROUP: (of, members)})


# -- reading the declarations ------------------------------------------------------------


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return _Later(field.default_factory)
    return None


def _made(default: Any) -> Any:
    return default.make() if isinstance(default, _Later) else default


def _members(of: type, members: Mapping[str, Source]) -> Iterator[tuple[str, Source, Any]]:
    """A group's members: each field of ``of`` it reads, its source and the default ``of`` declares."""
    defaults = {member.name: _default(member) for member in dataclasses.fields(of)}
    for name, source in members.items():
        yield name, source, defaults[name]


def sources(cls: type) -> Iterator[tuple[str, Source, Any]]:
    """Each value ``cls`` takes: its name (a group's member by its own), source and default."""
    for field in dataclasses.fields(cls):
        if _SOURCE in field.metadata:
            yield field.name, field.metadata[_SOURCE], _default(field)
        elif _GROUP in field.metadata:
            yield from _members(*field.metadata[_GROUP])


def add_arguments(cls: type, parser: argparse.ArgumentParser, globals_title: str) -> None:
    """The command's positional arguments and options, then the global ones, in their own group."""
    declared = list(sources(cls))
    for dest, source, default in declared:
        if not source.everywhere:
            source.add_to(parser, dest, default)
    everywhere = parser.add_argument_group(globals_title)
    for dest, source, default in declared:
        if source.everywhere:
            source.add_to(everywhere, dest, default)


def read(cls: type, parsed: Mapping[str, Any], environ: Mapping[str, str], command: str) -> Any:
    """An instance of ``cls`` from the parsed flags and the environment."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if _SOURCE in field.metadata:
            source = field.metadata[_SOURCE]
            values[field.name] = source.value(parsed, field.name, environ, _made(_default(field)), command)
        elif _GROUP in field.metadata:
            of, members = field.metadata[_GROUP]
            values[field.name] = of(
                **{
                    name: source.value(parsed, name, environ, default, command)
                    for name, source, default in _members(of, members)
                }
            )
    return cls(**values)
