"""CSV files, the Markdown summary with target verdicts, and gnuplot PNGs."""
import csv
import math
import os
import random
import re
import subprocess

from . import cni
from .util import log, median, summary

# ---- CSV -------------------------------------------------------------------


def write_csv(path, rows):
    if not rows:
        return
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


# ---- aggregation -------------------------------------------------------------


def _vals(rows, key="value", **match):
    return [float(r[key]) for r in rows
            if all(r.get(k) == v for k, v in match.items()) and _finite(r.get(key))]


def _finite(x):
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _pairs(rows, key, match, metric):
    """Per-repetition (filter, baseline) values of one key: the two windows
    of a pair ran back to back, so their ratio cancels slow load drift."""
    by_rep = {}
    for r in rows:
        if r["metric"] == metric and all(r.get(k) == v for k, v in match.items()) and _finite(r.get(key)):
            by_rep.setdefault(r["rep"], {})[r["role"]] = float(r[key])
    return [(p["filter"], p["baseline"]) for p in by_rep.values() if "filter" in p and "baseline" in p]


def aggregate(rows, group_keys, metrics):
    """{group: {metric: {filter/baseline: (min, med, max), ratio: median of the
    per-rep filter/baseline ratios, ratio_range: their (min, max), cpu_f/cpu_b:
    medians, cpu_ratio(+_range): per-rep filter/baseline CPU per unit,
    cpu_added(+_range): per-rep filter minus baseline CPU per unit}}}"""
    out = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in group_keys), {})
    for g in out:
        match = dict(zip(group_keys, g))
        for m in metrics:
            f = _vals(rows, metric=m, role="filter", **match)
            b = _vals(rows, metric=m, role="baseline", **match)
            if not f:
                continue
            cpu_key = "cpu_ns_per_kib" if m == "tcp" else "cpu_ns_per_pkt"
            ratios = [x / y for x, y in _pairs(rows, "value", match, m) if y]
            cpu_ratios = [x / y for x, y in _pairs(rows, cpu_key, match, m) if y]
            cpu_added = [x - y for x, y in _pairs(rows, cpu_key, match, m)]
            out[g][m] = {
                "filter": summary(f), "baseline": summary(b),
                "ratio": median(ratios), "ratio_range": summary(ratios)[::2],
                "cpu_f": median(_vals(rows, cpu_key, metric=m, role="filter", **match)),
                "cpu_b": median(_vals(rows, cpu_key, metric=m, role="baseline", **match)),
                "cpu_ratio": median(cpu_ratios), "cpu_ratio_range": summary(cpu_ratios)[::2],
                # CPU the filter adds per unit over its interleaved baseline, per rep
                "cpu_added": median(cpu_added), "cpu_added_range": summary(cpu_added)[::2],
                "checks": sorted({r["check"] for r in rows if r["metric"] == m
                                  and all(r.get(k) == v for k, v in match.items())} - {"ok"}),
            }
    return out


# ---- formatting ----------------------------------------------------------------

def _msecs(rows, plugin, verb):
    """Milliseconds of the control rows of one plugin (or tc backend) and verb."""
    return [r["secs"] * 1e3 for r in rows if r["plugin"] == plugin and r["verb"] == verb]



def _fmt_rate(x, tcp=False):
    if not _finite(x):
        return "n/a"
    return f"{x:.2f}" if tcp else f"{x / 1e6:.3f}"


def _trip(t, tcp=False):
    return " / ".join(_fmt_rate(v, tcp) for v in t)


def _r(x):
    return f"{x:.3f}" if _finite(x) else "n/a"


def ratio_range(row):
    """(median, min, max) of a testrun.csv row of kind `ratio`, or None."""
    m = re.search(r"min ([0-9.]+) max ([0-9.]+)", row["detail"]) if row else None
    return (float(row["ns_per_packet"]), float(m.group(1)), float(m.group(2))) if m else None


def _line(pts):
    """(intercept, slope) of the least-squares line through (x, y) points."""
    n = len(pts)
    mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0
    return my - b * mx, b


def add_trend(pts, levels, resamples=400):
    """How ADD latency moves with the pods already on the node, from every
    ADD of the run instead of a few at each level: the least-squares line,
    the ratio of its values at the last and the first level, and a 95%
    bootstrap interval of that ratio (seeded: a report rebuilt from the same
    CSV says the same). None with fewer than 20 points."""
    if len(pts) < 20:
        return None
    lo_level, hi_level = levels[0], levels[-1]

    def ratio(sample):
        a, b = _line(sample)
        base = a + b * lo_level
        return (a + b * hi_level) / base if base > 0 else float("nan")

    rng = random.Random(1)
    boot = sorted(r for r in (ratio([pts[rng.randrange(len(pts))] for _ in pts]) for _ in range(resamples))
                  if math.isfinite(r))
    a, b = _line(pts)
    return {"n": len(pts), "a": a, "b": b, "ratio": ratio(pts), "lo_level": lo_level, "hi_level": hi_level,
            "ci": (boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]) if boot else (float("nan"),) * 2,
            "resamples": resamples}


def paired_ratio(num, den, resamples=400):
    """Median of per-pair ratios num[k] / den[k] (pairs measured back to back),
    their range, and a 95% bootstrap interval of that median (seeded, as
    add_trend). None without pairs."""
    ratios = sorted(num[k] / den[k] for k in num if k in den and den[k] > 0)
    if not ratios:
        return None
    rng = random.Random(1)
    boot = sorted(median([ratios[rng.randrange(len(ratios))] for _ in ratios]) for _ in range(resamples))
    return {"n": len(ratios), "ratio": median(ratios), "min": ratios[0], "max": ratios[-1],
            "ci": (boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]), "resamples": resamples}


def beyond_floor(rounds, resamples=400, prog="podfence", ref="article"):
    """rounds: {round: {program: (count, ns)}} from windows that took
    turns: program runs and their run time, or packets and their CPU time.
    Each program's mean ns per count over all rounds, and prog's
    mean beyond the do-nothing program's ("empty") over ref's, with
    a 95% bootstrap interval that resamples whole rounds (seeded). A
    window's noise here is its own, not a drift the three share, so the
    means of many windows, not per-round ratios, carry the signal. None
    without the three."""
    keys = [r for r, v in sorted(rounds.items()) if {"empty", ref, prog} <= set(v)]
    if not keys:
        return None

    def means(sample):
        tot = {}
        for r in sample:
            for prog, (runs, ns) in rounds[r].items():
                a = tot.setdefault(prog, [0, 0])
                a[0] += runs
                a[1] += ns
        return {prog: ns / runs for prog, (runs, ns) in tot.items() if runs}

    def ratio(mu):
        den = mu[ref] - mu["empty"]
        return (mu[prog] - mu["empty"]) / den if den > 0 else float("inf")

    mu = means(keys)
    rng = random.Random(1)
    boot = sorted(ratio(means([keys[rng.randrange(len(keys))] for _ in keys])) for _ in range(resamples))
    return {"n": len(keys), "means": mu, "ratio": ratio(mu),
            "ci": (boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]), "resamples": resamples}


class Report:
    def __init__(self, ctx):
        self.ctx = ctx
        self.lines = []
        self.verdicts = []

    def w(self, s=""):
        self.lines.append(s)

    # -- sections -----------------------------------------------------------

    def matrix(self):
        rows = self.ctx.rows["matrix"]
        if not rows:
            return {}
        agg = aggregate(rows, ["config"], ["pps_allowed", "pps_denied", "tcp"])
        p = self.ctx.p
        self.w(f"### Data plane, {p['matrix_rules']} rules (IPv4; {p['reps']} interleaved reps; "
               f"{p['pps_secs']} s pps windows, {p['tcp_secs']} s TCP)")
        self.w()
        self.w("Mpps and Gbit/s as min / median / max. ratio = median over repetitions of "
               "filter / no filter, each pair measured back to back (range of the per-rep ratios in "
               "brackets). CPU: median ns of CPU per packet (sender + its CPU's ksoftirqd) or per KiB "
               "(iperf3 client + server), filter vs its interleaved baseline.")
        self.w()
        self.w("| config | allowed Mpps | ratio | CPU ns/pkt | denied Mpps | ratio (vs stack discard) "
               "| TCP Gbit/s | ratio | CPU ns/KiB | checks |")
        self.w("|---|---|---|---|---|---|---|---|---|---|")
        for (cfg,), a in agg.items():
            al, de, tc = a.get("pps_allowed"), a.get("pps_denied"), a.get("tcp")
            checks = sorted(set((al or {}).get("checks", []) + (de or {}).get("checks", [])
                                + (tc or {}).get("checks", [])))
            self.w(f"| {cfg} | {_trip(al['filter']) if al else 'n/a'} | {_rr(al)} "
                   f"| {_cpu(al)} | {_trip(de['filter']) if de else 'n/a'} | {_rr(de)} "
                   f"| {_trip(tc['filter'], True) if tc else 'n/a'} | {_rr(tc)} "
                   f"| {_cpu(tc)} | {'; '.join(checks) or 'ok'} |")
        base = {m: summary(_vals(rows, metric=m, role="baseline")) for m in ("pps_allowed", "pps_denied", "tcp")}
        self.w(f"| (no filter, all reps) | {_trip(base['pps_allowed'])} | 1 | | {_trip(base['pps_denied'])} "
               f"| 1 | {_trip(base['tcp'], True)} | 1 | | |")
        self.w()
        self._plot_matrix(agg)
        self.w("![data plane ratios](matrix.png)")
        self.w()
        return agg

    def scaling(self):
        rows = self.ctx.rows["scaling"]
        if not rows:
            return {}
        agg = aggregate(rows, ["config", "family", "rules"], ["pps_allowed", "pps_denied"])
        self.w(f"### Rule scaling ({self.ctx.p['scaling_reps']} interleaved reps per point, "
               f"{self.ctx.p['scaling_secs']} s windows)")
        self.w()
        self.w("Allowed flow = one established connection (ACKs, a flow cache hit for podfence; RSTs in runs "
               "before 2026-12-03, a conntrack hit); denied flow = "
               "every packet through the policy lookup. \"vs none\": median per-rep ratio to the "
               "interleaved no-filter window (range). \"vs own 1 rule\": that ratio at N rules over "
               "the same at 1 rule (the baselines cancel the drift between the two points).")
        self.w()
        self.w("CPU = ns of CPU per packet (sender + its ksoftirqd); \"own 1 rule (CPU)\" = the "
               "same comparison from CPU cost (baseline-normalised), the pps ratio a quiet, CPU-bound "
               "machine would show.")
        self.w()
        self.w("| config | family | rules | load s | allowed Mpps (med) | vs none | vs own 1 rule "
               "| CPU ns/pkt | own 1 rule (CPU) | denied Mpps (med) | vs none | vs own 1 rule "
               "| CPU ns/pkt | own 1 rule (CPU) | checks |")
        self.w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for (cfg, fam, n), a in sorted(agg.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
            one = agg.get((cfg, fam, 1), {})
            load = median(_vals(rows, "setup_s", config=cfg, family=fam, rules=n, role="filter"))
            cells = []
            for m in ("pps_allowed", "pps_denied"):
                x = a.get(m)
                if not x:
                    cells += ["n/a"] * 5
                    continue
                own = x["ratio"] / one[m]["ratio"] if m in one and one[m]["ratio"] else float("nan")
                own_cpu = (one[m]["cpu_ratio"] / x["cpu_ratio"]
                           if m in one and x["cpu_ratio"] else float("nan"))
                cells += [_fmt_rate(x["filter"][1]), _rr(x), _r(own),
                          f"{x['cpu_f']:.0f}" if _finite(x["cpu_f"]) else "n/a", _r(own_cpu)]
            checks = sorted(set(sum((a[m]["checks"] for m in a), [])))
            self.w(f"| {cfg} | v{fam} | {n} | {load:.1f} | " + " | ".join(cells) + f" | {'; '.join(checks) or 'ok'} |")
        self.w()
        self._plot_scaling(agg, rows)
        self.w("![rule scaling](scaling.png)")
        self.w()
        return agg

    def testrun(self):
        """bench/testrun's CSV: kind,prog,family,rules,case,ns_per_packet,detail."""
        rows = self.ctx.rows["testrun"]
        if not rows or "ns_per_packet" not in rows[0]:
            if rows:
                self.w("### BPF_PROG_TEST_RUN: testrun.csv has unexpected columns, see the file")
                self.w()
            return
        dp = [r for r in rows if r["kind"] in ("datapath", "article", "lpm")]
        mem = [r for r in rows if r["kind"] == "memory"]
        sizes = sorted({int(r["rules"]) for r in dp})
        series = sorted({(r["kind"], r["prog"], r["family"], r["case"]) for r in dp})
        self.w("### BPF_PROG_TEST_RUN ns per packet (bench/testrun, kernel-timed)")
        self.w()
        self.w("podfence: a pod's stub as ADD loads it, the flow cache in it and the engine behind its tail "
               "call (runs before 2026-12-03, stop 25: the engine alone, no stub), vs the article's program. "
               "`new`: allowed packet of a new flow "
               "(conntrack miss, both prefix matches, conntrack insert; median of single runs); `established_1`: "
               "the flow's first ACK, single runs; `established`/`denied`/article `allowed`: repeat loops; "
               "`established_egress`: the same flow's packets from the pod, through the source check (loop). "
               "Compare single-run cases with the article's `allowed_1`, loops with its `allowed`. "
               "`lpm`: a plain kernel LPM trie holding the same CIDRs (bench/testrun/lpm.bpf.c: one stateless "
               "lookup), fed the same established and denied packets; it shows how a trie's cost moves with "
               "the number of prefixes.")
        self.w()
        self.w("| kind | prog | family | case | " + " | ".join(f"{n} rules" for n in sizes) + " |")
        self.w("|---|---|---|---|" + "---|" * len(sizes))
        for key in series:
            vals = {int(r["rules"]): r["ns_per_packet"] for r in dp
                    if (r["kind"], r["prog"], r["family"], r["case"]) == key}
            self.w("| " + " | ".join(key) + " | " + " | ".join(vals.get(n, "") for n in sizes) + " |")
        self.w()
        ratios = [r for r in rows if r["kind"] == "ratio"]
        if ratios:
            rs = sorted({int(r["rules"]) for r in ratios})
            self.w("Per-round ratios to the article's allowed packet, timed next to each other on the same hook "
                   "(the fastest of 10 alternating short loops of each per round; median, min-max over the rounds):")
            self.w()
            self.w("| prog | family | case | " + " | ".join(f"{n} rules" for n in rs) + " |")
            self.w("|---|---|---|" + "---|" * len(rs))
            for key in sorted({(r["prog"], r["family"], r["case"]) for r in ratios}):
                cells = []
                for n in rs:
                    t = ratio_range(next((r for r in ratios
                                          if (r["prog"], r["family"], r["case"], int(r["rules"])) == key + (n,)), None))
                    cells.append(f"{t[0]:.3f} ({t[1]:.3f}-{t[2]:.3f})" if t else "")
                self.w("| " + " | ".join(key) + " | " + " | ".join(cells) + " |")
            self.w()
        if mem:
            self.w("Per-pod policy map for N rules (memlock from fdinfo): " + "; ".join(
                f"{r['family']} {r['rules']} rules: {int(r['value']) / 1024:.0f} KiB ({r['detail']})"
                for r in mem if r.get("value", "").isdigit()) + ".")
            self.w()
        self._plot_testrun(dp, series)

    def progtime(self):
        """{(hook, metric): beyond_floor(...)} of the progtime part, from the
        programs' run time, and {(hook, metric, "cpu"): ...} from CPU per
        packet in the same windows."""
        rows = self.ctx.rows["progtime"]
        if not rows:
            return {}
        p = self.ctx.p
        self._table(f"Program time per packet, kernel run-time statistics ({p['matrix_rules']} rules, IPv4; "
                    f"{p['progtime_rounds']} rounds)",
                    ["hook", "flow", "do-nothing program ns", "the article's ns", "podfence ns",
                     "beyond the do-nothing program: the article / podfence ns",
                     "podfence / the article, beyond it [95% bootstrap over rounds]",
                     "CPU ns per packet: do-nothing / the article / podfence",
                     "CPU beyond the do-nothing program, podfence / the article [95%]"])
        out = {}
        # A window that overran its length by half stalled (the VM or the
        # sender descheduled); a stall inside a program run lands in its run
        # time whole (one such window here: 80 ms over 12,160 runs). Its
        # round goes, for all three programs, chosen by wall time alone.
        stalled = {(r["hook"], r["metric"], r["round"]) for r in rows
                   if _finite(r.get("secs")) and float(r["secs"]) > 1.5 * float(p["progtime_secs"])}
        versus = []
        for hook in sorted({r["hook"] for r in rows}):
            for metric in ("allowed", "allowed_rst", "denied"):
                runs, cpu = {}, {}
                for r in rows:
                    if r["hook"] == hook and r["metric"] == metric and _finite(r.get("prog_run_ns")) \
                            and r["check"] == "ok" and (hook, metric, r["round"]) not in stalled:
                        prog = r["config"].split("-")[0]
                        runs.setdefault(r["round"], {})[prog] = (int(r["prog_runs"]), float(r["prog_run_ns"]))
                        # Per packet counted as traffic.blast counts them.
                        n = int(r["sent"] if metric == "denied" else r["received"])
                        if _finite(r.get("cpu_ns_per_pkt")) and n:
                            cpu.setdefault(r["round"], {})[prog] = (n, float(r["cpu_ns_per_pkt"]) * n)
                res = beyond_floor(runs)
                if not res:
                    continue
                out[(hook, metric)], out[(hook, metric, "cpu")] = res, beyond_floor(cpu)
                for prog, label in (("podfence", metric), ("compare", f"{metric}, --compare's binary")):
                    pr, pc = beyond_floor(runs, prog=prog), beyond_floor(cpu, prog=prog)
                    if not pr:
                        continue
                    mu, (lo, hi) = pr["means"], pr["ci"]
                    cells = "n/a | n/a"
                    if pc:
                        # A denied packet: the do-nothing program passes it on to
                        # the stack, which costs more than a drop; no ratio then.
                        cm, (clo, chi) = pc["means"], pc["ci"]
                        ratio = (f"{_r(pc['ratio'])} [{_r(clo)}-{_r(chi)}]"
                                 if cm["article"] > cm["empty"] else "n/a")
                        cells = f"{cm['empty']:.0f} / {cm['article']:.0f} / {cm[prog]:.0f} | {ratio}"
                    self.w(f"| {hook} | {label} | {mu['empty']:.1f} | {mu['article']:.1f} | {mu[prog]:.1f} | "
                           f"{mu['article'] - mu['empty']:.1f} / {mu[prog] - mu['empty']:.1f} | "
                           f"{_r(pr['ratio'])} [{_r(lo)}-{_r(hi)}] | {cells} |")
                both = beyond_floor(runs, prog="podfence", ref="compare")
                if both:
                    lo, hi = both["ci"]
                    versus.append(f"{hook} {metric}: {_r(both['ratio'])} [{_r(lo)}-{_r(hi)}]")
        self.w()
        if versus:
            self.w("This binary's program time beyond the do-nothing program over --compare's, the same "
                   "rounds [95% bootstrap]: " + "; ".join(versus) + ".")
            self.w()
        self.w(f"Each program runs alone on its hook, in its own topology; a round gives each a "
               f"{p['progtime_secs']} s window in turn; ns are means per program run over all rounds. The "
               "statistics time each run with two clock reads, which the do-nothing program's time holds too; "
               "subtracting it leaves what the program itself does. CPU per packet is the sender's and its "
               "CPU's ksoftirqd's (schedstat) in the same windows, means over the rounds: beyond the "
               "do-nothing program it holds the program's run and what the program costs the stack after it "
               "(on tc mostly its verdict's path, bench/README.md), which the run time leaves out. "
               f"Rounds left out because a window took over 1.5 times its length (a stall): {len(stalled)}.")
        self.w()
        return out

    def _table(self, title, columns):
        """A section title and a markdown table's header."""
        self.w(f"### {title}")
        self.w()
        self.w("| " + " | ".join(columns) + " |")
        self.w("|" + "---|" * len(columns))

    def control(self):
        rows = self.ctx.rows["control"]
        if not rows:
            return {}
        res = {}
        chain = [r for r in rows if r["test"] == "chain"]
        if chain:
            self._table(f"Control plane: one chain bandwidth -> firewall -> podfence "
                        f"({self.ctx.p['chain_pods']} pods, ms, median (min-max))",
                        ("plugin", "ADD", "DEL", "ADD+DEL", "ratio to bandwidth"))
            meds = {}
            for plugin in ("bandwidth", "firewall", "podfence"):
                add, dele = _msecs(chain, plugin, "ADD"), _msecs(chain, plugin, "DEL")
                if not add:
                    continue
                meds[plugin] = median(add) + median(dele)
                self.w(f"| {plugin} | {_ms(add)} | {_ms(dele)} | {meds[plugin]:.1f} | "
                       f"{_r(meds[plugin] / meds['bandwidth']) if 'bandwidth' in meds else 'n/a'} |")
            vdel = _msecs(chain, "veth-delete", "DEL")
            if vdel:
                self.w(f"| veth deletion after the chain's DEL (`ip link del`, as the primary plugin "
                       f"does; frees what podfence left) | | {_ms(vdel)} | | |")
            self.w()
            first = _msecs([r for r in rows if r["test"] == "chain_first"], "podfence", "ADD")
            if first:
                self.w(f"The chain's first podfence ADD took {first[0]:.1f} ms (on a node where no podfence "
                       f"ran before, it loads and verifies the datapath); it is one more pod, not in the table.")
                self.w()
            res["chain"] = meds
            # Per pod: podfence's ADD+DEL over bandwidth's on the same pod.
            per = {}
            for r in chain:
                per.setdefault(r["pod"], {}).setdefault(r["plugin"], 0.0)
                per[r["pod"]][r["plugin"]] += r["secs"]
            meds["per_pod_ratio"] = [v["podfence"] / v["bandwidth"] for v in per.values()
                                     if v.get("podfence") and v.get("bandwidth")]
        backend = [r for r in rows if r["test"] == "backend"]
        if backend:
            self._table(f"Control plane: podfence alone by hook ({self.ctx.p['chain_pods']} pods each, "
                        f"in turn; ms, median (min-max))",
                        ("hook", "ADD", "DEL", "ADD+DEL", "veth deletion after DEL"))
            for b in (label for label, _ in cni.HOOKS):
                t = {v: _msecs(backend, b, v) for v in ("ADD", "DEL", "veth-delete")}
                if t["ADD"] and t["DEL"]:
                    self.w(f"| {b} | {_ms(t['ADD'])} | {_ms(t['DEL'])} | "
                           f"{median(t['ADD']) + median(t['DEL']):.1f} | {_ms(t['veth-delete'])} |")
            self.w()
        cmp_rows = [r for r in rows if r["test"] == "compare"]
        if cmp_rows:
            self._table(f"Control plane: this binary against another, pod by pod ({self.ctx.p['compare_pairs']} "
                        f"pairs, which goes first alternating; ms, median (min-max))",
                        ("binary", "ADD", "DEL", "ADD+DEL"))
            for side, name in (("this", self.ctx.podfence), ("other", self.ctx.compare)):
                add, dele = _msecs(cmp_rows, side, "ADD"), _msecs(cmp_rows, side, "DEL")
                if add and dele:
                    self.w(f"| {side}: `{name}` | {_ms(add)} | {_ms(dele)} | {median(add) + median(dele):.1f} |")
            self.w()
            per = {(s, v): {r["pod"]: r["secs"] for r in cmp_rows if r["plugin"] == s and r["verb"] == v}
                   for s in ("this", "other") for v in ("ADD", "DEL")}
            parts = []
            for v in ("ADD", "DEL"):
                pr = paired_ratio(per["this", v], per["other", v])
                if pr:
                    res[f"compare_{v.lower()}"] = pr
                    parts.append(f"{v} {_r(pr['ratio'])}x ({_r(pr['min'])}-{_r(pr['max'])}) "
                                 f"[{_r(pr['ci'][0])}-{_r(pr['ci'][1])}]")
            if parts:
                self.w("This over the other, per-pair ratio, median (min-max) [95% bootstrap interval of the "
                       "median]: " + ", ".join(parts) + ".")
                self.w()
        scale = [r for r in rows if r["test"] == "scale"]
        if scale:
            total = self.ctx.p["scale_pods"]
            win = 5
            self.w(f"### Control plane: podfence ADD/DEL with pods already on the node (mode tc, 1-rule policies)")
            self.w()
            self.w("| pods already on the node | ADD ms, median of the next 5 ADDs | DEL ms (same pods) |")
            self.w("|---|---|---|")
            first = [r["secs"] * 1e3 for r in scale if r["verb"] == "ADD" and r["pods_before"] == 0]
            self.w(f"| 0 (first ADD: loads the datapath) | {first[0]:.1f} | |" if first else "")
            for lvl in self.ctx.p["scale_levels"]:
                add = [r["secs"] * 1e3 for r in scale if r["verb"] == "ADD" and lvl <= r["pods_before"] < lvl + win]
                dele = [r["secs"] * 1e3 for r in scale if r["verb"] == "DEL" and lvl <= r["pods_before"] < lvl + win]
                res[f"add_{lvl}"] = summary(add)
                self.w(f"| {lvl} | {_ms(add)} | {_ms(dele)} |")
            self.w()
            fit = add_trend([(r["pods_before"], r["secs"] * 1e3) for r in scale
                             if r["verb"] == "ADD" and r["pods_before"] >= 1], self.ctx.p["scale_levels"])
            if fit:
                res["add_fit"] = fit
                self.w(f"Least-squares line through all {fit['n']} ADDs after the first: {fit['a']:.1f} ms "
                       f"+ {fit['b'] * 1000:.2f} ms per 1,000 pods already on the node; ADD at "
                       f"{fit['hi_level']} over ADD at {fit['lo_level']} on that line: {_r(fit['ratio'])}x "
                       f"(95% bootstrap interval {_r(fit['ci'][0])}-{_r(fit['ci'][1])}, "
                       f"{fit['resamples']} resamples of the ADDs).")
                self.w()
            probes = {}
            for side in ("node", "ref"):
                for verb in ("ADD", "DEL"):
                    probes[side, verb] = {r["pod"]: r["secs"] * 1e3 for r in rows
                                          if r["test"] == f"scale_probe_{side}" and r["verb"] == verb}
            at = next((r["pods_before"] for r in rows if r["test"] == "scale_probe_node"), None)
            pair = {v: paired_ratio(probes["node", v], probes["ref", v]) for v in ("ADD", "DEL")}
            if pair["ADD"]:
                res["add_probe"] = dict(pair["ADD"], pods=at)
                self.w(f"Side by side, {pair['ADD']['n']} pairs: one more pod's ADD and DEL on this node "
                       f"({at} pods) and on a node with 1 pod (its own bpffsRoot), in turn. ADD "
                       f"{_ms(list(probes['node', 'ADD'].values()))} against "
                       f"{_ms(list(probes['ref', 'ADD'].values()))} ms; per-pair ratio, median (min-max) "
                       f"[95% bootstrap interval of the median]: ADD {_r(pair['ADD']['ratio'])}x "
                       f"({_r(pair['ADD']['min'])}-{_r(pair['ADD']['max'])}) "
                       f"[{_r(pair['ADD']['ci'][0])}-{_r(pair['ADD']['ci'][1])}], DEL {_r(pair['DEL']['ratio'])}x "
                       f"({_r(pair['DEL']['min'])}-{_r(pair['DEL']['max'])}) "
                       f"[{_r(pair['DEL']['ci'][0])}-{_r(pair['DEL']['ci'][1])}].")
                self.w()
            mem = self.ctx.memory
            if mem:
                n = mem["pods"]
                self.w(f"Kernel memory for {n} pods (objects created by the ADDs; bpftool memlock): "
                       f"{mem['new_maps']} maps, {mem['map_bytes'] / n / 1024:.1f} KiB of maps per pod; "
                       f"{mem['new_progs']} programs, {mem['prog_bytes'] / n / 1024:.1f} KiB per pod; "
                       f"{mem['bpffs_entries']} bpffs entries in all ({mem['bpffs_entries'] / n:.1f} per pod).")
                self.w()
            self._plot_control(scale)
            self.w("![ADD latency vs pods on the node](control.png)")
            self.w()
        return res

    # -- plots --------------------------------------------------------------

    def _plotdir(self):
        d = os.path.join(self.ctx.out, "plotdata")
        os.makedirs(d, exist_ok=True)
        return d

    def _gnuplot(self, name, script):
        path = os.path.join(self._plotdir(), f"{name}.gp")
        with open(path, "w") as f:
            f.write(f"set terminal pngcairo noenhanced size 900,520 font 'sans,10'\n"
                    f"set output '{os.path.join(self.ctx.out, name + '.png')}'\n" + script)
        proc = subprocess.run(["gnuplot", path], capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"gnuplot {name} failed: {proc.stderr.strip()[:500]}")

    def _dat(self, name, lines):
        path = os.path.join(self._plotdir(), f"{name}.dat")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _plot_matrix(self, agg):
        lines = ["# config allowed denied tcp"]
        for (cfg,), a in agg.items():
            lines.append(cfg + " " + " ".join(_r(a[m]["ratio"]) if m in a else "NaN"
                                              for m in ("pps_allowed", "pps_denied", "tcp")))
        dat = self._dat("matrix", lines)
        self._gnuplot("matrix", f"""
set title 'Ratio to no filter (median, interleaved), {self.ctx.p['matrix_rules']} rules'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left
set yrange [0:*]
set ylabel 'filter / no filter'
set xtics rotate by -30
set grid ytics
set arrow from graph 0, first 0.95 to graph 1, first 0.95 nohead dt 2 lc rgb 'red'
plot '{dat}' using 2:xtic(1) title 'allowed pps', '' using 3 title 'denied pps (vs stack discard)', '' using 4 title 'TCP 1 stream'
""")

    def _plot_scaling(self, agg, rows):
        series = sorted({(cfg, fam) for cfg, fam, _ in agg})
        plots = []
        for fam in sorted({f for _, f in series}):
            b = median(_vals(rows, metric="pps_allowed", role="baseline", family=fam))
            plots.append(f"{b / 1e6:.4f} with lines lw 2 lc rgb 'gray' dt {1 if fam == 4 else 3} "
                         f"title 'no filter v{fam}'")
        for cfg, fam in series:
            pts = sorted((n, a["pps_allowed"]["filter"][1], a.get("pps_denied", {}).get("filter", (0, float("nan")))[1])
                         for (c, f, n), a in agg.items() if c == cfg and f == fam and "pps_allowed" in a)
            dat = self._dat(f"scaling-{cfg}-v{fam}", [f"{n} {al / 1e6:.4f} {de / 1e6:.4f}" for n, al, de in pts])
            plots.append(f"'{dat}' using 1:2 with linespoints title '{cfg} v{fam} allowed'")
            plots.append(f"'{dat}' using 1:3 with linespoints dt 2 title '{cfg} v{fam} denied'")
        self._gnuplot("scaling", f"""
set title 'Packet rate vs rule count (median)'
set logscale x
set logscale y
set xlabel 'rules'
set ylabel 'Mpps'
set key outside right
set grid
plot {', '.join(plots)}
""")

    def _plot_testrun(self, dp, series):
        plots = []
        for i, key in enumerate(series):
            pts = sorted((int(r["rules"]), float(r["ns_per_packet"])) for r in dp
                         if (r["kind"], r["prog"], r["family"], r["case"]) == key)
            dat = self._dat(f"testrun-{i}", [f"{n} {v}" for n, v in pts])
            plots.append(f"'{dat}' using 1:2 with linespoints title '{' '.join(key)}'")
        if plots:
            self._gnuplot("testrun", f"""
set title 'BPF_PROG_TEST_RUN ns per packet vs rules'
set logscale x
set logscale y
set xlabel 'rules'
set ylabel 'ns/packet' 
set key outside right
set grid
plot {', '.join(plots)}
""")
            self.w("![test_run ns/packet](testrun.png)")
            self.w()

    def _plot_control(self, scale):
        add = self._dat("control-add", [f"{r['pods_before']} {r['secs'] * 1e3:.3f}" for r in scale if r["verb"] == "ADD"])
        dele = self._dat("control-del", [f"{r['pods_before']} {r['secs'] * 1e3:.3f}" for r in scale if r["verb"] == "DEL"])
        self._gnuplot("control", f"""
set title 'podfence ADD / DEL latency vs pods already on the node'
set xlabel 'pods already on the node'
set ylabel 'ms'
set logscale y
set grid
plot '{add}' using 1:2 with points pt 7 ps 0.4 title 'ADD', '{dele}' using 1:2 with points pt 7 ps 0.4 title 'DEL'
""")


def _rr(a):
    if not a or not _finite(a["ratio"]):
        return "n/a"
    lo, hi = a["ratio_range"]
    return f"{a['ratio']:.3f} ({lo:.2f}-{hi:.2f})"


def _cpu(a):
    if not a or not _finite(a["cpu_f"]):
        return "n/a"
    return f"{a['cpu_f']:.0f} vs {a['cpu_b']:.0f}"


def _ms(xs):
    if not xs:
        return "n/a"
    lo, med, hi = summary(xs)
    return f"{med:.1f} ({lo:.1f}-{hi:.1f})"
