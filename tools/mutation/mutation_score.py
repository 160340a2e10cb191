"""The mutation score per module, from the results mutmut keeps in ``mutants/``.

``python -m tools.mutation.mutation_score [MODULE]`` prints, per module, how many mutants the tests
caught, the survivors by name, and the equivalent mutants excluded from the score (listed
with their reasons in ``tools/mutation/equivalent_mutants.txt``). Over the whole project it exits 1
when a package is under its floor, or when the exclusion list names a mutant that no longer
exists or that the tests now catch: the list must stay true.

``--sample`` scores only the mutants whose number ends in 3 or 7 (SAMPLE_PATTERN), one in
five, which ``bash .ci/mutation --sample`` tried again: a fresh score in a fifth of the
time, with its 95% interval for the whole package.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from mutmut.stats import status_by_exit_code

from tools import REPO

EQUIVALENT_LIST = Path(__file__).resolve().parent / "equivalent_mutants.txt"
FLOORS = {"migrator": 90.0, "infra": 80.0}
# mutmut numbers a function's mutants in the order it walks the code, so the last digit of
# the number is blind to what a mutant changes and how hard it is to catch.
SAMPLE_PATTERN = "*__mutmut_*[37]"
# The normal quantile of a two-sided 95% interval.
Z_95 = 1.959964


def in_sample(name: str) -> bool:
    return fnmatchcase(name, SAMPLE_PATTERN)


# What mutmut calls each verdict (status_by_exit_code), grouped into what the score counts.
CAUGHT_STATES = {"killed", "timeout"}
SURVIVED_STATES = {"survived", "no tests", "suspicious"}


@dataclass
class Tally:
    caught: int = 0
    survivors: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def judged(self) -> int:
        return self.caught + len(self.survivors)

    @property
    def percent(self) -> float:
        return 100.0 * self.caught / self.judged if self.judged else 100.0

    def interval(self) -> tuple[float, float]:
        """Wilson's 95% score interval of the percentage, for a sample of a larger population:
        unlike the normal approximation it stays within 0 to 100 when nearly every mutant is
        caught."""
        n = self.judged
        if not n:
            return 0.0, 100.0
        p = self.caught / n
        centre = (p + Z_95**2 / (2 * n)) / (1 + Z_95**2 / n)
        spread = Z_95 * math.sqrt(p * (1 - p) / n + Z_95**2 / (4 * n * n)) / (1 + Z_95**2 / n)
        return 100.0 * max(0.0, centre - spread), 100.0 * min(1.0, centre + spread)


def read_equivalent() -> dict[str, str]:
    """Mutant name -> why it behaves exactly as the original (one per line: NAME  REASON)."""
    reasons: dict[str, str] = {}
    for number, line in enumerate(EQUIVALENT_LIST.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{EQUIVALENT_LIST}:{number}: {name} has no reason")
        reasons[name] = reason.strip()
    return reasons


def read_results() -> dict[str, int | None]:
    results: dict[str, int | None] = {}
    mutants = REPO / "mutants"
    for meta in sorted(mutants.rglob("*.py.meta")):
        # mutmut leaves the results of a module that was since moved or deleted.
        if (REPO / meta.relative_to(mutants).with_suffix("")).exists():
            results.update(json.loads(meta.read_text())["exit_code_by_key"])
    return results


# mutmut records -1 when its test runner raised instead of returning (a crashed fork server
# marks every mutant it held so) and calls that a timeout; no test ran to a verdict.
RUNNER_CRASHED = 255
# pytest's exit code for a session stopped part-way (Ctrl-C, or a stray SIGINT): no verdict either.
INTERRUPTED = 2


def status_of(code: int | None) -> str:
    """mutmut's name for a verdict: killed, survived, no tests, timeout, not checked, ..."""
    return "runner crashed" if code == RUNNER_CRASHED else str(status_by_exit_code[code])


def caught(code: int | None) -> bool:
    return status_of(code) in CAUGHT_STATES


def survived(code: int | None) -> bool:
    return status_of(code) in SURVIVED_STATES


def module_of(mutant: str) -> str:
    """``migrator.dsn.x_parse__mutmut_3`` -> ``migrator.dsn``."""
    return mutant.split("__mutmut_", maxsplit=1)[0].rsplit(".", 1)[0]


def tally(results: dict[str, int | None], equivalent: dict[str, str]) -> dict[str, Tally]:
    by_module: dict[str, Tally] = defaultdict(Tally)
    for mutant, code in sorted(results.items()):
        entry = by_module[module_of(mutant)]
        if caught(code):
            entry.caught += 1
        elif mutant in equivalent:
            entry.equivalent.append(mutant)
        elif survived(code):
            entry.survivors.append(mutant)
        else:
            entry.unchecked.append(mutant)
    return by_module


def forget(retry: Callable[[str, int | None], bool]) -> int:
    """Mark the mutants ``retry`` picks (name, verdict) unchecked, so that the next run tries
    them against today's tests: mutmut keeps a verdict until the mutated function changes,
    and reruns only unchecked mutants unless it is given their names."""
    forgotten = 0
    for meta in (REPO / "mutants").rglob("*.py.meta"):
        document = json.loads(meta.read_text())
        codes = document["exit_code_by_key"]
        for name, code in codes.items():
            if retry(name, code):
                codes[name] = None
                forgotten += 1
        meta.write_text(json.dumps(document, indent=4))
    return forgotten


def retry_rule(how: str, prefix: str) -> Callable[[str, int | None], bool]:
    """What each way of forgetting tries again, of the mutants whose names start with prefix:
    - survivors: every survivor against today's tests, and every mutant whose run crashed or
      was interrupted (no verdict);
    - all: every verdict, after the harness changed;
    - sample: every verdict in the sample, so that a run stopped part-way leaves the rest
      unchecked rather than counted with verdicts from before.
    The first two never pick a listed equivalent mutant with a verdict: no test can catch it,
    and each costs a run of all its tests. A sample's run names its mutants, and mutmut
    tries every mutant it is given by name, the listed ones too."""
    equivalent = read_equivalent()

    def retry(name: str, code: int | None) -> bool:
        if not name.startswith(prefix):
            return False
        if how == "sample":
            return in_sample(name)
        if code in (RUNNER_CRASHED, INTERRUPTED):
            return True
        return name not in equivalent and (how == "all" or survived(code))

    return retry


def parse_args(argv: list[str]) -> argparse.Namespace:
    prog = "python -m tools.mutation.mutation_score"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("module", nargs="?", default="", help="a module or package prefix, e.g. migrator.dsn")
    parser.add_argument("--sample", action="store_true", help=f"score only the sample ({SAMPLE_PATTERN})")
    parser.add_argument(
        "--forget",
        choices=["survivors", "all", "sample"],
        help="mark verdicts unchecked for the next run instead of printing the score",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    prefix: str = args.module
    if args.forget:
        forgotten = forget(retry_rule(args.forget, prefix))
        print(f"{forgotten} mutants ({args.forget}) will be tried again")
        return 0
    if not (REPO / "mutants").is_dir():
        print("no mutants/ directory: run bash .ci/mutation first", file=sys.stderr)
        return 2
    equivalent = read_equivalent()
    scored: Callable[[str], bool] = in_sample if args.sample else lambda _: True
    results = {name: code for name, code in read_results().items() if name.startswith(prefix) and scored(name)}
    by_module = tally(results, equivalent)
    packages: dict[str, Tally] = defaultdict(Tally)
    for module, entry in sorted(by_module.items()):
        print(
            f"{module:34} {entry.caught:5} of {entry.judged:5} caught  {entry.percent:5.1f}%"
            f"  ({len(entry.equivalent)} equivalent)"
        )
        for survivor in entry.survivors:
            print(f"    survived: {survivor}")
        package = packages[module.split(".")[0]]
        package.caught += entry.caught
        package.survivors += entry.survivors
        package.equivalent += entry.equivalent
        package.unchecked += entry.unchecked
    verdict = 0
    what = "sampled non-equivalent mutants" if args.sample else "non-equivalent mutants"
    for name, package in sorted(packages.items()):
        floor = FLOORS.get(name, 0.0)
        mark = "ok" if package.percent >= floor else f"UNDER the {floor:.0f}% floor"
        print(
            f"mutation score {name}/: {package.caught} of {package.judged} {what} caught"
            f" ({package.percent:.1f}%), {len(package.equivalent)} equivalent excluded: {mark}"
        )
        if args.sample:
            low, high = package.interval()
            print(f"    the whole package, at 95% confidence: {low:.1f}% to {high:.1f}%")
        if package.unchecked:
            print(f"    {len(package.unchecked)} mutants not checked yet (interrupted run?)")
        if not prefix and package.percent < floor:
            verdict = 1
    if not prefix:
        # A sample holds a fifth of the list's mutants: the others are neither gone nor caught.
        stale = [name for name in filter(scored, equivalent) if name not in results or caught(results[name])]
        for name in stale:
            state = "no longer exists" if name not in results else "is caught by the tests now"
            print(f"{EQUIVALENT_LIST.name}: {name} {state}: take it off the list")
        verdict = verdict or int(bool(stale))
    print(json.dumps(dict(Counter(status_of(code) for code in results.values()))))
    return verdict


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
