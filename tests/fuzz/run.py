"""Run kith's coverage-guided fuzz targets (atheris + libFuzzer), or replay their corpora.

    python tests/fuzz/run.py --target envelope --minutes 60   # one target, one hour
    python tests/fuzz/run.py --seconds 120 --jobs 2            # every target, 2 minutes each
    python tests/fuzz/run.py --replay                          # corpora only, no atheris needed

Each target runs in its own process (``run.py --child NAME -- <libFuzzer flags>``) with the
kith packages instrumented for coverage. The committed seeds (``corpus/<target>/``) are
read, never written: new inputs go to a scratch directory, or to ``--corpus-out DIR``
to keep them. A crash, a hang past ``--timeout`` seconds on one input, or memory past
``--rss-mb`` fails the run; libFuzzer saves the input to ``--artifacts`` (default:
``tests/fuzz/crashes/``) and this script prints its path and the command that replays it.
The exit status is non-zero if any target failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
TARGETS = (
    "codec",
    "card",
    "envelope",
    "signed_op",
    "fold",
    "reconcile",
    "codes",
    "membership",
    "private",
    "keystore",
    "gossip",
    "framing",
    "control",
)
INSTRUMENTED = ["kith.identity", "kith.sync", "kith.p2pnet"]


@dataclass
class Result:
    target: str
    ok: bool
    executions: int
    seconds: float
    coverage: int | None
    features: int | None
    corpus: int | None
    new_units: int | None
    peak_rss_mb: int | None
    artifact: str | None
    detail: str


def _child(name: str, libfuzzer_args: list[str]) -> None:
    import atheris

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=INSTRUMENTED):
        module = importlib.import_module(f"fuzz_{name}")
    atheris.Setup([sys.argv[0], *libfuzzer_args], module.TestOneInput)
    atheris.Fuzz()


def _last_int(pattern: str, text: str) -> int | None:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else None


def run_target(
    name: str,
    *,
    seconds: int,
    runs: int | None,
    timeout: int,
    rss_mb: int,
    corpus_out: Path | None,
    artifacts: Path,
) -> Result:
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"kith-fuzz-{name}-") as scratch:
        work = corpus_out / name if corpus_out else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        flags = [
            f"-max_total_time={seconds}",
            f"-timeout={timeout}",
            f"-rss_limit_mb={rss_mb}",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/{name}-",
        ]
        if runs is not None:
            flags.append(f"-runs={runs}")
        command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--", *flags, str(work)]
        command.append(str(CORPUS / name))
        started = time.monotonic()
        proc = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=seconds * 3 + 120)
        elapsed = time.monotonic() - started
    log = proc.stderr + proc.stdout
    artifact = re.findall(r"Test unit written to (\S+)", log)
    ok = proc.returncode == 0 and not artifact
    detail = ""
    if not ok:
        lines = [line for line in log.splitlines() if line.strip()]
        keep = [i for i, line in enumerate(lines) if "Uncaught Python exception" in line or "ERROR:" in line]
        start = keep[0] if keep else max(0, len(lines) - 40)
        detail = "\n".join(lines[start : start + 40])
    return Result(
        target=name,
        ok=ok,
        executions=_last_int(r"stat::number_of_executed_units:\s*(\d+)", log) or 0,
        seconds=round(elapsed, 1),
        coverage=_last_int(r"cov: (\d+)", log),
        features=_last_int(r"ft: (\d+)", log),
        corpus=_last_int(r"corp: (\d+)", log),
        new_units=_last_int(r"stat::new_units_added:\s*(\d+)", log),
        peak_rss_mb=_last_int(r"stat::peak_rss_mb:\s*(\d+)", log),
        artifact=artifact[-1] if artifact else None,
        detail=detail,
    )


def replay(names: list[str], extra: list[Path]) -> int:
    """Run every committed corpus file (and any in ``extra`` dirs) through its target once."""
    sys.path.insert(0, str(HERE))
    failures = 0
    for name in names:
        module = importlib.import_module(f"fuzz_{name}")
        folders = [CORPUS / name, *(folder / name for folder in extra)]
        files = sorted(p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.is_file())
        for path in files:
            try:
                module.TestOneInput(path.read_bytes())
            except Exception as exc:  # noqa: BLE001 - report every failing input, then fail
                failures += 1
                print(f"FAIL {name} {path}: {type(exc).__name__}: {exc}")
        print(f"{name}: replayed {len(files)} inputs")
    return 1 if failures else 0


def markdown_rows(results: list[Result], seconds: int) -> str:
    rows = []
    for r in results:
        cov = "n/a" if r.coverage is None else f"{r.coverage} edges, {r.features} features"
        rows.append(
            f"| `{r.target}` | {r.executions:,} | {cov} | {r.corpus} | {0 if r.ok else 1} | "
            f"`python tests/fuzz/run.py --target {r.target} --seconds {seconds}` |"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--child":
        _child(argv[2], argv[4:] if len(argv) > 3 and argv[3] == "--" else argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", action="append", choices=TARGETS, help="a target (repeatable; default: all)")
    parser.add_argument("--seconds", type=int, default=None, help="time per target (default 60)")
    parser.add_argument("--minutes", type=float, default=None, help="time per target, in minutes")
    parser.add_argument("--runs", type=int, default=None, help="stop each target after this many executions")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once (one process each)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take before it is a hang")
    parser.add_argument("--rss-mb", type=int, default=2048, help="memory one target may use before it is a failure")
    parser.add_argument("--corpus-out", type=Path, default=None, help="keep new inputs in DIR/<target>/")
    parser.add_argument(
        "--artifacts", type=Path, default=HERE / "crashes", help="where crashing inputs are saved (git ignores it)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON to this file")
    parser.add_argument("--markdown", action="store_true", help="print docs/RELIABILITY.md table rows")
    parser.add_argument("--replay", action="store_true", help="only replay the corpora (no atheris)")
    args = parser.parse_args(argv[1:])
    names = args.target or list(TARGETS)
    if args.replay:
        return replay(names, [args.corpus_out] if args.corpus_out else [])
    seconds = args.seconds if args.seconds is not None else int((args.minutes or 1) * 60)

    def one(name: str) -> Result:
        return run_target(
            name,
            seconds=seconds,
            runs=args.runs,
            timeout=args.timeout,
            rss_mb=args.rss_mb,
            corpus_out=args.corpus_out,
            artifacts=args.artifacts.resolve(),
        )

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, names))
    for r in results:
        cov = "" if r.coverage is None else f", cov {r.coverage}, ft {r.features}, corpus {r.corpus}"
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.target:<11} {r.executions:>10,} executions in {r.seconds:>6}s{cov}")
        if not r.ok:
            print(r.detail)
            if r.artifact:
                print(f"  replay: python {Path(__file__)} --child {r.target} -- {r.artifact}")
    if args.markdown:
        print(markdown_rows(results, seconds))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
