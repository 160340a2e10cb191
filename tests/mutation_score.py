"""The mutation score per module, from the results mutmut keeps in ``mutants/``.

``python -m tests.mutation_score [MODULE]`` prints, per module, how many mutants the tests
caught, the survivors by name, and the equivalent mutants excluded from the score (listed
with their reasons in ``tests/equivalent_mutants.txt``). Over the whole project it exits 1
when a package is under its floor, or when the exclusion list names a mutant that no longer
exists or that the tests now catch: the list must stay true.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mutmut.stats import status_by_exit_code

REPO = Path(__file__).resolve().parent.parent
EQUIVALENT_LIST = REPO / "tests" / "equivalent_mutants.txt"
FLOORS = {"migrator": 90.0, "infra": 80.0}

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


def forget(everything: bool = False, prefix: str = "") -> int:
    """Mark every surviving mutant unchecked, so the next run tries it against today's tests
    (mutmut keeps a verdict until the mutated function changes), and every mutant whose run
    crashed or was interrupted (mutmut reruns only unchecked mutants). With ``everything``,
    every verdict (of the mutants whose names start with ``prefix``): a recheck after the
    harness changed. Never the listed equivalent mutants: no test can catch them, and each
    costs a run of all its tests."""
    equivalent = read_equivalent()
    forgotten = 0
    for meta in (REPO / "mutants").rglob("*.py.meta"):
        document = json.loads(meta.read_text())
        codes = document["exit_code_by_key"]
        for name, code in codes.items():
            retry = code in (RUNNER_CRASHED, INTERRUPTED) or (name not in equivalent and (everything or survived(code)))
            if retry and name.startswith(prefix):
                codes[name] = None
                forgotten += 1
        meta.write_text(json.dumps(document, indent=4))
    return forgotten


def main(argv: list[str]) -> int:
    if argv[:1] in (["--forget-survivors"], ["--forget-all"]):
        everything = argv[0] == "--forget-all"
        forgotten = forget(everything, prefix=argv[1] if argv[1:] else "")
        what = "mutants (all but the listed equivalent ones)" if everything else "survivors (and crashed checks)"
        print(f"{forgotten} {what} will be tried again")
        return 0
    prefix = argv[0] if argv else ""
    if not (REPO / "mutants").is_dir():
        print("no mutants/ directory: run bash .ci/mutation first", file=sys.stderr)
        return 2
    equivalent = read_equivalent()
    results = {name: code for name, code in read_results().items() if name.startswith(prefix)}
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
    for name, package in sorted(packages.items()):
        floor = FLOORS.get(name, 0.0)
        mark = "ok" if package.percent >= floor else f"UNDER the {floor:.0f}% floor"
        print(
            f"mutation score {name}/: {package.caught} of {package.judged} non-equivalent mutants caught"
            f" ({package.percent:.1f}%), {len(package.equivalent)} equivalent excluded: {mark}"
        )
        if package.unchecked:
            print(f"    {len(package.unchecked)} mutants not checked yet (interrupted run?)")
        if not prefix and package.percent < floor:
            verdict = 1
    if not prefix:
        stale = [name for name in equivalent if name not in results or caught(results[name])]
        for name in stale:
            state = "no longer exists" if name not in results else "is caught by the tests now"
            print(f"{EQUIVALENT_LIST.name}: {name} {state}: take it off the list")
        verdict = verdict or int(bool(stale))
    print(json.dumps(dict(Counter(status_of(code) for code in results.values()))))
    return verdict


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
