"""What both benchmark scripts share: interleaved rounds, the ratio with its spread, the
machine and load, and writing a section of docs/benchmarks.md.

A one-shot "A, then B" comparison flips sign when another job takes the cores halfway, so
contenders run interleaved (A B A B ...), each round in a fresh process, and a ratio is
reported as the median over rounds with its min-max; rounds that disagree on which side
is faster make it inconclusive.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lscpu if line.startswith("Model name")), platform.processor())
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no GPU"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {gpu}"


def interleave(contenders: list[str], rounds: int, run: Callable[[str, int], dict]) -> dict[str, list[dict]]:
    """``run(name, round)`` for every contender in turn, ``rounds`` times (A B A B ...).

    Each result gets the load average seen just before its run under ``"load"``.
    """
    results: dict[str, list[dict]] = {name: [] for name in contenders}
    for round_ in range(rounds):
        for name in contenders:
            load = os.getloadavg()[0]
            print(f"round {round_ + 1}/{rounds}: {name} (load {load:.1f})", file=sys.stderr, flush=True)
            results[name].append({**run(name, round_), "load": load})
    return results


def child_run(script: str, argv: list[str], name: str, round_: int, workdir: Path) -> dict:
    """Run ``script --child NAME`` in its own process; it writes its result as JSON."""
    out = workdir / f"{name}-{round_}.json"
    cmd = [sys.executable, script, *argv, "--child", name, "--workdir", str(workdir), "--result", str(out)]
    subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return json.loads(out.read_text())


def ratio(numerators: list[float], denominators: list[float]) -> dict:
    """Per-round ratios, their median and spread; inconclusive when rounds disagree in sign."""
    ratios = [a / b for a, b in zip(numerators, denominators)]
    return {
        "ratios": ratios,
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "inconclusive": min(ratios) < 1 < max(ratios),
    }


def format_ratio(r: dict) -> str:
    spread = f"{r['min']:.2f}–{r['max']:.2f}× over {len(r['ratios'])} rounds"
    if r["inconclusive"]:
        return f"inconclusive (rounds disagree: {spread})"
    return f"**{r['median']:.2f}×** (median; {spread})"


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], fmt: str = ".0f") -> str:
    """``median (min–max)``"""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def rounds_table(results: dict[str, list[dict]], tokens_per_s: dict[str, list[float]], ratio: dict | None = None) -> list[str]:
    """Markdown rows: each round's tokens/s of every contender with the load before its run,
    and the round's ratio (from :func:`ratio`) when given."""
    names = list(results)
    last = (f" {names[0]} / {names[1]} |", " ---: |") if ratio else ("", "")
    lines = [
        "| round | " + " | ".join(f"{n} tokens/s (load)" for n in names) + " |" + last[0],
        "| ---: | " + " | ".join("---:" for _ in names) + " |" + last[1],
    ]
    for i in range(len(tokens_per_s[names[0]])):
        cells = " | ".join(f"{tokens_per_s[n][i]:.0f} ({results[n][i]['load']:.1f})" for n in names)
        lines.append(f"| {i + 1} | {cells} |" + (f" {ratio['ratios'][i]:.2f} |" if ratio else ""))
    return lines


def header(command: str) -> list[str]:
    """Command, machine and date: what every table in docs/benchmarks.md carries."""
    return [f"`{command}`", "", f"Machine: {machine()}. Run {datetime.date.today().isoformat()}."]


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section titled ``heading`` of ``path`` (or add it), leaving the rest as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section.rstrip("\n") + "\n" + (text[end:] if end >= 0 else "")
    path.write_text(text)
