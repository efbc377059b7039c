"""Driver: python3 -m pfbench --out DIR --tools DIR --bpffs DIR [--quick] ...
Called by bench/suite/run.sh, which builds the tools, mounts the private
bpffs and cleans up on any exit."""
import argparse
import json
import os
import signal
import sys
import time

from . import report, suites, targets, util
from .topo import Topology
from .util import log

FULL = {
    "reps": 5, "pps_secs": 0.5, "tcp_secs": 2, "matrix_rules": 10000,
    "scaling_rules": [1, 100, 1000, 10000, 100000], "scaling_reps": 3, "scaling_secs": 0.4,
    "chain_pods": 20, "compare_pairs": 40, "scale_pods": 1005, "scale_levels": [1, 100, 1000], "scale_probes": 40,
    "progtime_rounds": 40, "progtime_secs": 0.05, "progtime_flows": ["allowed", "denied"],
}
QUICK = {
    "reps": 1, "pps_secs": 0.2, "tcp_secs": 1, "matrix_rules": 10000,
    "scaling_rules": [1, 10000], "scaling_reps": 1, "scaling_secs": 0.2,
    "chain_pods": 2, "compare_pairs": 3, "scale_pods": 105, "scale_levels": [1, 100], "scale_probes": 5,
    "progtime_rounds": 4, "progtime_secs": 0.05, "progtime_flows": ["allowed", "denied"],
}
PARTS = ["matrix", "scaling", "progtime", "testrun", "control"]


class Ctx:
    def __init__(self, a):
        self.out, self.tmp, self.bpffs = a.out, a.tmp, a.bpffs
        self.tools, self.run_id = a.tools, a.run_id
        self.podfence = a.podfence if a.podfence and os.access(a.podfence, os.X_OK) else None
        self.testrun = a.testrun if a.testrun and os.access(a.testrun, os.X_OK) else None
        self.compare = a.compare if a.compare and os.access(a.compare, os.X_OK) else None
        self.podfence_log = os.path.join(a.out, "podfence.log")
        self.p = dict(QUICK if a.quick else FULL)
        # The tool takes the rule counts as arguments.
        self.p["testrun_args"] = (a.testrun_args.split() if a.testrun_args
                                  else [str(n) for n in self.p["scaling_rules"]])
        self.rows = {k: [] for k in ("matrix", "scaling", "progtime", "testrun", "control")}
        self.missing = []
        self.memory = {}

    def tool(self, name):
        return os.path.join(self.tools, name)


def main():
    ap = argparse.ArgumentParser(prog="pfbench")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--tools", required=True)
    ap.add_argument("--bpffs", required=True)
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--podfence")
    ap.add_argument("--testrun")
    ap.add_argument("--testrun-args", default="")
    ap.add_argument("--compare", help="another podfence binary: control times its ADD/DEL pod by pod "
                                      "against --podfence's")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(PARTS))
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild summary.md and plots from the CSV/JSON files in --out")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override one parameter, e.g. scaling_rules=[1,100000]")
    a = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so every topology and podfence attachment
    # is removed by its context manager (run.sh's trap is the second net).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    util.VERBOSE = a.verbose
    ctx = Ctx(a)
    for kv in a.set:
        key, _, val = kv.partition("=")
        if key not in ctx.p:
            ap.error(f"--set: unknown parameter {key} (one of {', '.join(sorted(ctx.p))})")
        ctx.p[key] = json.loads(val)
    parts = a.only.split(",")
    if a.report_only:
        meta = load_run(ctx)
        return write_report(ctx, meta, meta.get("quick", a.quick))
    machine = util.machine_info()
    t_start = time.time()
    log(f"machine: {machine}; podfence: {ctx.podfence}; testrun: {ctx.testrun}")

    if "matrix" in parts or "scaling" in parts:
        with Topology(ctx.run_id, "base") as base:
            if "matrix" in parts:
                suites.matrix(ctx, base)
            if "scaling" in parts:
                suites.scaling(ctx, base)
    if "progtime" in parts:
        suites.progtime(ctx)
    if "testrun" in parts:
        suites.testrun(ctx)
    if "control" in parts:
        suites.control(ctx)

    for part in ("matrix", "scaling", "progtime", "control"):
        report.write_csv(os.path.join(ctx.out, f"{part}.csv"), ctx.rows[part])
    meta = {"quick": a.quick, "params": ctx.p, "podfence": ctx.podfence, "compare": ctx.compare,
            "memory": ctx.memory, "missing": ctx.missing, "machine": machine,
            "machine_end": util.machine_info(), "elapsed_s": time.time() - t_start}
    with open(os.path.join(ctx.out, "run.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return write_report(ctx, meta, a.quick)


def load_run(ctx):
    """Rows and metadata of an earlier run, for --report-only."""
    import csv

    def num(v):
        for conv in (int, float):
            try:
                return conv(v)
            except ValueError:
                pass
        return v

    for part in ("matrix", "scaling", "progtime", "control"):
        path = os.path.join(ctx.out, f"{part}.csv")
        if os.path.exists(path):
            with open(path) as f:
                ctx.rows[part] = [{k: num(v) for k, v in r.items()} for r in csv.DictReader(f)]
    suites.parse_testrun(ctx)
    with open(os.path.join(ctx.out, "run.json")) as f:
        meta = json.load(f)
    ctx.p.update(meta["params"])
    ctx.memory, ctx.missing = meta["memory"], meta["missing"]
    ctx.podfence, ctx.compare = meta.get("podfence"), meta.get("compare")
    return meta


def write_report(ctx, meta, quick):
    machine, machine_end = meta["machine"], meta["machine_end"]
    rep = report.Report(ctx)
    rep.w(f"## Benchmark results ({'quick' if quick else 'full'} run)")
    rep.w()
    rep.w(f"Machine: {machine['nproc']} CPUs, {machine['cpu']}, kernel {machine['kernel']}, "
          f"/sys/kernel/rcu_expedited {machine.get('rcu_expedited', 'not recorded')}, "
          f"SRSO (spec_rstack_overflow) \"{machine.get('srso', 'not recorded')}\". "
          f"Load average at start {machine['loadavg']}, at end {machine_end['loadavg']} "
          f"(a busy machine makes every number noisy; ratios are interleaved to cancel drift). "
          f"Suite wall time {meta['elapsed_s'] / 60:.1f} min.")
    rep.w()
    m = rep.matrix()
    s = rep.scaling()
    pt = rep.progtime()
    rep.testrun()
    c = rep.control()
    targets.write(rep, m, s, pt, c, ctx.rows["testrun"], ctx.p)
    bad = sorted({f"{r['config']} {r['metric']} ({r.get('role', 'progtime')}): {r['check']}"
                  for part in ("matrix", "scaling", "progtime") for r in ctx.rows[part] if r["check"] != "ok"})
    if ctx.missing or bad:
        rep.w("### Problems in this run")
        rep.w()
        for x in ctx.missing + bad:
            rep.w(f"- {x}")
        rep.w()
    with open(os.path.join(ctx.out, "summary.md"), "w") as f:
        f.write("\n".join(rep.lines) + "\n")
    log(f"wrote {ctx.out}/summary.md")
    for x in ctx.missing + bad:
        log(f"PROBLEM: {x}")
    return 1 if ctx.missing or bad else 0


if __name__ == "__main__":
    sys.exit(main())
