#!/usr/bin/env python
"""Ours (`mipnerf bench`), the anchor (hjxwhy/mipnerf_pl) and google/mipnerf's JAX reference
back to back on this machine: ratios.

Runs, interleaved, ROUNDS times: the anchor script (../shared/bench/anchor_mipnerf_pl.py, which
reads mipnerf_pl's model from a git mirror at run time), the JAX reference when --jax-mirror
is given (benchmarks/reference_jax.py under --jax-python, which reads google/mipnerf's model
from its git mirror at run time), then `mipnerf bench --json`, all with the same workload
(paper config, 256-ray Adam steps, 2048-ray render chunks). Interleaving spreads a busy
machine's load over all of them; the medians of the rounds and the medians of the per-round
ratios are printed, and with --markdown rows per phase go into BENCHMARKS.md's table.

    python benchmarks/side_by_side.py --mirror /path/to/mipnerf_pl.git \
        [--jax-mirror /path/to/google-mipnerf.git --jax-python /path/to/venv/bin/python] \
        [--rounds 3] [--markdown BENCHMARKS.md]

The anchor needs `einops` (pip install einops, or --anchor-pythonpath DIR holding it); the
JAX reference `pip install jax==0.10.2 flax optax gin-config` (a venv of its own is simplest).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ANCHOR = REPO.parent / "shared" / "bench" / "anchor_mipnerf_pl.py"


def run_json(command: list[str], env: dict[str, str], label: str) -> dict:
    started = time.perf_counter()
    print(f"  {label}: {' '.join(shlex.quote(c) for c in command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        raise SystemExit(f"{label} failed (exit {done.returncode})")
    text = done.stdout.strip()
    # The anchor prints one JSON line last; `mipnerf bench --json` prints one JSON object.
    start = text.rfind("\n{") + 1 if not text.startswith("{") else 0
    data = json.loads(text[start:])
    print(f"  {label}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return data


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--mirror", required=True, help="git directory of a copy of hjxwhy/mipnerf_pl (kept outside this repo)"
    )
    parser.add_argument("--anchor-script", type=Path, default=DEFAULT_ANCHOR)
    parser.add_argument(
        "--anchor-pythonpath", default="", help="extra PYTHONPATH for the anchor (e.g. a folder with einops)"
    )
    parser.add_argument("--jax-mirror", help="git directory of a copy of google/mipnerf (times the JAX reference)")
    parser.add_argument("--jax-python", default=sys.executable, help="a Python with jax, flax, optax, gin-config")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--steps", type=int, default=3, help="measured train steps of each side (the anchor's default is 3)"
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for both sides (0: their default)")
    parser.add_argument("--bench-args", default="", help="extra arguments for `mipnerf bench` (e.g. '--plain')")
    parser.add_argument("--markdown", type=Path, help="append the median rows to this file's table (BENCHMARKS.md)")
    parser.add_argument("--json-out", type=Path, help="write every round's numbers here")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        env["MKL_NUM_THREADS"] = str(args.threads)
    anchor_env = dict(env)
    if args.anchor_pythonpath:
        anchor_env["PYTHONPATH"] = os.pathsep.join(p for p in (args.anchor_pythonpath, env.get("PYTHONPATH", "")) if p)
    anchor_cmd = [sys.executable, str(args.anchor_script), args.mirror, "--batch", str(args.batch),
                  "--chunk", str(args.chunk), "--steps", str(args.steps)]  # fmt: skip
    ours_cmd = [sys.executable, "-m", "mipnerf_cli", "bench", "--json", "--config", "paper", "--batch", str(args.batch),
                "--chunk", str(args.chunk), "--steps", str(args.steps), "--warmup", "1", *shlex.split(args.bench_args)]  # fmt: skip

    jax_cmd = None
    if args.jax_mirror:
        jax_cmd = [args.jax_python, str(REPO / "benchmarks" / "reference_jax.py"), args.jax_mirror, "--batch",
                   str(args.batch), "--chunk", str(args.chunk), "--steps", str(args.steps)]  # fmt: skip
    rounds = []
    loads = [load()]
    for i in range(args.rounds):
        print(f"round {i + 1}/{args.rounds} (load {load()})", file=sys.stderr, flush=True)
        entry = {"anchor": run_json(anchor_cmd, anchor_env, "anchor")}
        if jax_cmd:
            entry["jax"] = run_json(jax_cmd, env, "jax")
        # The matmul peak (for MFU) is measured once, in the first round.
        entry["ours"] = run_json(ours_cmd + ([] if i == 0 else ["--no-peak"]), env, "ours")
        entry["load"] = load()
        rounds.append(entry)
        loads.append(load())

    def rate(entry: dict, side: str, phase: str) -> float:
        return entry["ours"][phase]["rays_per_s"] if side == "ours" else entry[side][f"{phase}_rays_per_s"]

    first = rounds[0]["ours"]
    print(f"\nmachine: {first['machine']}; torch {first['torch_version']}, {first['threads']} threads; "
          f"{args.rounds} interleaved rounds; load averages {' | '.join(loads)}")  # fmt: skip
    print(f"fast path: {json.dumps(first['fast_path'])}")
    others = ["anchor"] + (["jax"] if jax_cmd else [])
    names = {"anchor": "hjxwhy/mipnerf_pl", "jax": "google/mipnerf (JAX)"}
    summary = {}
    for phase in ("train", "render"):
        ours_rates = [rate(r, "ours", phase) for r in rounds]
        summary[phase] = {"ours": statistics.median(ours_rates), "ours_per_round": ours_rates}
        for side in others:
            rates = [rate(r, side, phase) for r in rounds]
            ratios = [o / a for o, a in zip(ours_rates, rates)]
            summary[phase][side] = statistics.median(rates)
            summary[phase][f"{side}_per_round"] = rates
            summary[phase][f"ratio_vs_{side}"] = statistics.median(ratios)
            summary[phase][f"ratios_vs_{side}"] = ratios
            per_round = ", ".join(f"{a:.1f}/{o:.1f}" for a, o in zip(rates, ours_rates))
            print(f"{phase:7s} vs {names[side]:21s} {statistics.median(rates):9.1f} -> ours "
                  f"{statistics.median(ours_rates):7.1f} rays/s: {statistics.median(ratios):5.2f}x   "
                  f"per round (theirs/ours) {per_round}")  # fmt: skip
    peak = first.get("matmul_peak")
    if peak:
        mfu = {phase: first[phase]["mfu"] for phase in ("train", "render")}
        print(f"peak for MFU {peak['best_gflops']:.1f} GFLOP/s ({peak['best_source']}); "
              f"MFU (round 1) train {100 * mfu['train']:.0f}%, render {100 * mfu['render']:.0f}%")  # fmt: skip

    if args.json_out:
        args.json_out.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=2))
    if args.markdown:
        sys.path.insert(0, str(REPO))
        from mipnerf_cli.bench.report import MARKDOWN_HEADER, append_markdown  # noqa: F401

        command = "python benchmarks/side_by_side.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        date = datetime.date.today().isoformat()
        rows = ""
        for side in others:
            for phase in ("train", "render"):
                s = summary[phase]
                mfu = first[phase].get("mfu")
                what = f"{phase} vs {names[side]} (median of {args.rounds})"
                cells = [first["machine"], "paper", what, f"{s[side]:.1f}", f"{s['ours']:.1f}",
                         f"{s[f'ratio_vs_{side}']:.2f}×", f"{100 * mfu:.0f}%" if mfu else "–", date,
                         " | ".join(loads).replace("|", "/"), f"`{command}`"]  # fmt: skip
                rows += "| " + " | ".join(cells) + " |\n"
        append_markdown(args.markdown, rows)
        print(f"appended {rows.count(chr(10))} rows to {args.markdown}")


if __name__ == "__main__":
    main()
