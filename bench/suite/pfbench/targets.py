"""The issue's targets and the article's claims, judged from this run's numbers.

Every verdict carries its evidence: the median and the range over
repetitions. HOLDS / DOES NOT HOLD only when the whole range is on one side
of the target; otherwise INCONCLUSIVE, which on a shared, busy machine is the
honest answer for differences of a few percent.
"""
import math

from .report import _r, ratio_range

INF = float("inf")


def _ok(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def _verdict(med, lo, hi, target, at_least=True):
    if not _ok(med):
        return "NOT MEASURED"
    if not (_ok(lo) and _ok(hi)):
        lo = hi = med
    good_lo, good_hi = (lo >= target, hi >= target) if at_least else (hi <= target, lo <= target)
    if good_lo:
        return "HOLDS"
    if not good_hi:
        return "DOES NOT HOLD"
    side = ">=" if (med >= target) == at_least else "<"
    if not at_least:
        side = "<=" if med <= target else ">"
    return f"INCONCLUSIVE (median {side} {target}, range straddles it)"


def _a(agg, key, metric):
    return agg.get(key, {}).get(metric)


def _range(a, which="ratio"):
    if not a:
        return float("nan"), float("nan"), float("nan")
    lo, hi = a[f"{which}_range"]
    return a[which], lo, hi


def _own(agg, cfg, fam, n, metric):
    """Filter at n rules vs itself at 1 rule, each normalised by its
    interleaved baseline: (median, lo, hi) from the per-rep ratio ranges."""
    one, at = _a(agg, (cfg, fam, 1), metric), _a(agg, (cfg, fam, n), metric)
    if not one or not at or not one["ratio"]:
        return float("nan"), float("nan"), float("nan")
    (m1, lo1, hi1), (mn, lon, hin) = _range(one), _range(at)
    return mn / m1, lon / hi1, hin / lo1


def _own_cpu(agg, cfg, fam, n, metric):
    one, at = _a(agg, (cfg, fam, 1), metric), _a(agg, (cfg, fam, n), metric)
    if not one or not at or not at["cpu_ratio"]:
        return float("nan")
    return one["cpu_ratio"] / at["cpu_ratio"]


def _fmt3(t):
    m, lo, hi = t
    return f"{_r(m)} ({_r(lo)}-{_r(hi)})" if _ok(lo) else _r(m)


def write(rep, matrix, scaling, progtime, control, testrun_rows, p):
    w = rep.w
    w("### Targets")
    w()
    w("Median (range over repetitions). HOLDS / DOES NOT HOLD need the whole range on one side; "
      "otherwise INCONCLUSIVE. \"CPU-derived\" is the same ratio computed from CPU per packet "
      "instead of packets per second (less sensitive to other load).")
    w()
    w("| target | measured | verdict |")
    w("|---|---|---|")
    n = p["matrix_rules"]
    big = 10000 if 10000 in p["scaling_rules"] else max(p["scaling_rules"])

    al = _a(matrix, ("podfence-tc",), "pps_allowed")
    t = _range(al)
    cpu = 1 / al["cpu_ratio"] if al and _ok(al["cpu_ratio"]) and al["cpu_ratio"] else float("nan")
    w(f"| podfence tc allowed pps >= 0.95x no filter ({n} rules) | pps {_fmt3(t)}; CPU-derived "
      f"{_r(cpu)} | {_verdict(*t, 0.95)} |")
    tcp = _a(matrix, ("podfence-tc",), "tcp")
    t = _range(tcp)
    w(f"| podfence tc one TCP stream >= 0.97x no filter ({n} rules) | {_fmt3(t)}; CPU per KiB "
      f"{_r(tcp['cpu_ratio']) if tcp else 'n/a'}x no filter's | {_verdict(*t, 0.97)} |")
    for pf, art, label in (("podfence-tc", "article-tc", "tc vs the article's tcx"),
                           ("podfence-xdp-generic", "article-xdp-generic", "xdp generic vs the article's")):
        t, text = _added_cpu_ratio(_a(matrix, (pf,), "pps_allowed"), _a(matrix, (art,), "pps_allowed"))
        w(f"| CPU podfence adds per allowed packet over no filter <= 1.2x what the article's program "
          f"adds ({n} rules, {label}) | {text} | {_verdict(*t, 1.2, at_least=False)} |")
    for hook, label in (("tc", "tc vs the article's tcx"), ("xdp-generic", "xdp generic vs the article's")):
        text, verdict = _beyond_floor(progtime.get((hook, "allowed")), "{:.1f} ns per run")
        w(f"| The programs' own run time alone (kernel statistics; {n} rules, {label}; "
          f"\"Program time per packet\"), beyond a do-nothing program <= 1.2x | {text} | {verdict} |")
        text, verdict = _beyond_floor(progtime.get((hook, "allowed", "cpu")), "{:.0f} ns per packet")
        w(f"| CPU podfence adds per allowed packet over a do-nothing program on the same hook <= 1.2x what "
          f"the article's adds ({n} rules, {label}; CPU in \"Program time per packet\"'s interleaved "
          f"windows) | {text} | {verdict} |")

    for fam in (4, 6):
        for metric, label in (("pps_allowed", "allowed, established flow"),
                              ("pps_denied", "denied, full policy lookup")):
            t = _own(scaling, "podfence-tc", fam, big, metric)
            ipt = _own(scaling, "iptables-linear", fam, big, metric)
            w(f"| podfence v{fam} at {big} rules >= 0.95x its own 1-rule pps ({label}) | "
              f"{_fmt3(t)}; CPU-derived {_r(_own_cpu(scaling, 'podfence-tc', fam, big, metric))} "
              f"(iptables linear: {_r(ipt[0])}) | {_verdict(*t, 0.95)} |")

    worst, text = _testrun_established(testrun_rows, big)
    w(f"| test_run, established flow <= 1.2x the article's program (tc and xdp, v4 and v6, at 1 and "
      f"{big} rules; per-round ratios, the article timed next to podfence; worst decides) | {text} | "
      f"{_verdict(*worst, 1.2, at_least=False)} |")
    worst, text = _testrun_ratio(testrun_rows, big)
    w(f"| (context) test_run, every case over the article's | {text} | |")

    chain = control.get("chain", {})
    if "podfence" in chain and "bandwidth" in chain:
        pf, bw = chain["podfence"], chain["bandwidth"]
        per_pod = chain.get("per_pod_ratio", [])
        lo, hi = (min(per_pod), max(per_pod)) if per_pod else (pf / bw, pf / bw)
        w(f"| ADD+DEL <= the bandwidth plugin's, same chain | podfence {pf:.1f} ms vs bandwidth "
          f"{bw:.1f} ms: {_r(pf / bw)}x (per pod {_r(lo)}-{_r(hi)}) | "
          f"{_verdict(pf / bw, lo, hi, 1.0, at_least=False)} |")
    else:
        w("| ADD+DEL <= the bandwidth plugin's, same chain | n/a | NOT MEASURED |")
    levels = p["scale_levels"]
    first, last = control.get(f"add_{levels[0]}"), control.get(f"add_{levels[-1]}")
    fit, probe = control.get("add_fit"), control.get("add_probe")
    if probe and _ok(probe["ratio"]):
        m, (lo, hi) = probe["ratio"], probe["ci"]
        w(f"| ADD at {levels[-1]} pods <= 1.1x ADD at {levels[0]} pod | side by side, {probe['n']} pairs "
          f"(a node with {probe['pods']} pods, one with 1): {_r(m)}x (95% bootstrap of the median "
          f"{_r(lo)}-{_r(hi)}; pairs {_r(probe['min'])}-{_r(probe['max'])})"
          + (f"; line through {fit['n']} ADDs {_r(fit['ratio'])}x" if fit and _ok(fit["ratio"]) else "")
          + f" | {_verdict(m, lo, hi, 1.1, at_least=False)} |")
    elif fit and _ok(fit["ratio"]):
        m, (lo, hi) = fit["ratio"], fit["ci"]
        w(f"| ADD at {levels[-1]} pods <= 1.1x ADD at {levels[0]} pod | line through {fit['n']} ADDs: "
          f"{fit['a']:.1f} ms + {fit['b'] * 1000:.2f} ms per 1,000 pods, {_r(m)}x (95% bootstrap {_r(lo)}-{_r(hi)}) | "
          f"{_verdict(m, lo, hi, 1.1, at_least=False)} |")
    elif first and last and _ok(first[1]) and _ok(last[1]):
        m = last[1] / first[1]
        lo, hi = last[0] / first[2], last[2] / first[0]
        w(f"| ADD at {levels[-1]} pods <= 1.1x ADD at {levels[0]} pod | {last[1]:.1f} ms vs "
          f"{first[1]:.1f} ms: {_r(m)}x ({_r(lo)}-{_r(hi)}) | {_verdict(m, lo, hi, 1.1, at_least=False)} |")
    else:
        w(f"| ADD at {levels[-1]} pods <= 1.1x ADD at {levels[0]} pod | n/a | NOT MEASURED |")
    w()
    _claims(w, matrix)


def _claims(w, matrix):
    w("### The article's claims")
    w()
    tc, xg = _a(matrix, ("article-tc",), "pps_allowed"), _a(matrix, ("article-xdp-generic",), "pps_allowed")
    if tc and xg and _ok(tc["cpu_ratio"]) and _ok(xg["cpu_ratio"]):
        # Each program's CPU per packet relative to its own interleaved
        # baseline, so the two are comparable though measured at different times.
        (xm, xlo, xhi), (tm, tlo, thi) = _range(xg, "cpu_ratio"), _range(tc, "cpu_ratio")
        saving, s_lo, s_hi = 1 - xm / tm, 1 - xhi / tlo, 1 - xlo / thi
        extra = []
        for metric, label in (("pps_denied", "per dropped packet"), ("tcp", "per KiB of one TCP stream")):
            a, b = _a(matrix, ("article-xdp-generic",), metric), _a(matrix, ("article-tc",), metric)
            if a and b and _ok(a["cpu_ratio"]) and _ok(b["cpu_ratio"]) and b["cpu_ratio"]:
                extra.append(f"{label} {1 - a['cpu_ratio'] / b['cpu_ratio']:+.1%}")
        if s_lo >= 0.05:
            verdict = "supported (the whole range is at least 5% in XDP's favour)"
        elif s_hi < 0.05:
            verdict = "NOT supported (generic XDP is not 5% cheaper in any repetition)"
        else:
            verdict = "inconclusive in this run (the range spans 5%)"
        w(f"- \"XDP beats TC by 5-15% CPU even in generic mode on veth\": generic XDP used "
          f"{saving:+.1%} ({s_lo:+.0%} to {s_hi:+.0%}) less CPU per allowed packet than tcx, each "
          f"relative to its interleaved baseline; {'; '.join(extra)}. pps ratio to no filter: XDP "
          f"generic {_r(xg['ratio'])}, tcx {_r(tc['ratio'])}. Verdict: {verdict}.")
    else:
        w("- \"XDP beats TC by 5-15% CPU even in generic mode\": not measured in this run.")
    xn = _a(matrix, ("article-xdp-native",), "pps_allowed")
    xn_tcp = _a(matrix, ("article-xdp-native",), "tcp")
    if xn:
        w(f"- \"veth has no native XDP\": false. The article's program attached in driver mode "
          f"(XDP_FLAGS_DRV_MODE, `ip link` shows `xdp`, not `xdpgeneric`) on the veth and filtered: "
          f"allowed pps {_r(xn['ratio'])}x no filter, one TCP stream "
          f"{_r(xn_tcp['ratio']) if xn_tcp else 'n/a'}x, because native XDP on a veth turns "
          f"TSO/GSO off on its peer (FIELD-NOTES). Native mode exists but is the slower choice here.")
    else:
        w("- \"veth has no native XDP\": not measured in this run (native attach failed or skipped).")
    w()


def _beyond_floor(res, unit):
    """(text, verdict) of a report.beyond_floor result against 1.2x; unit
    formats the do-nothing program's figure, e.g. "{:.1f} ns per run"."""
    if not res:
        return "n/a", "NOT MEASURED"
    mu, (lo, hi) = res["means"], res["ci"]
    num = unit.split(" ", 1)[0]
    text = (f"podfence {num.format(mu['podfence'])} ns, the article {num.format(mu['article'])} ns, a "
            f"do-nothing program {unit.format(mu['empty'])}; beyond the latter {_r(res['ratio'])}x (95% "
            f"bootstrap over {res['n']} rounds {_r(lo)}-{_r(hi)})")
    return text, _verdict(res["ratio"], lo, hi, 1.2, at_least=False)


def _added_cpu_ratio(pf, art):
    """((median, lo, hi), text): CPU podfence adds per packet over its
    interleaved no-filter baseline, over what the article's program adds;
    the range pairs each side's per-rep extremes."""
    nan = (float("nan"),) * 3
    if not pf or not art or not _ok(pf.get("cpu_added")) or not _ok(art.get("cpu_added")):
        return nan, "n/a"
    (pm, (plo, phi)), (am, (alo, ahi)) = (pf["cpu_added"], pf["cpu_added_range"]), \
        (art["cpu_added"], art["cpu_added_range"])
    if am <= 0:
        return nan, f"podfence {pm:+.0f} ns, the article {am:+.0f} ns (no cost to compare with)"
    # A rep where the article cost nothing (or less than no filter, noise)
    # leaves the ratio unbounded above: 1e9 keeps the verdict honest.
    lo = plo / ahi if ahi > 0 else 0.0
    hi = phi / alo if alo > 0 else 1e9
    rng = f"{_r(lo)}-{_r(hi) if hi < 1e9 else 'unbounded'}"
    return (pm / am, lo, hi), (f"podfence {pm:+.0f} ns ({plo:+.0f} to {phi:+.0f}), the article "
                               f"{am:+.0f} ns ({alo:+.0f} to {ahi:+.0f}): {_r(pm / am)}x ({rng})")


def _testrun_established(rows, n):
    """((worst median, worst low, worst high), text): podfence's
    established-flow packet (repeat loop) over the article's allowed packet,
    at 1 rule and at n (or the largest size <= n). bench/testrun times the
    two side by side in every round (kind `ratio`): the median and range of
    those per-round ratios. A CSV without them (an older tool) falls back to
    the ratio of the two medians, timed apart. The article's program is
    IPv4-only, so v6 is set against its v4 figure."""
    rows = [r for r in rows if r.get("kind") in ("datapath", "article", "ratio")]
    sizes = sorted({int(r["rules"]) for r in rows if int(r["rules"]) <= n})
    if not sizes:
        return (float("nan"),) * 3, "n/a"

    def find(kind, prog, size, case, family):
        for r in rows:
            if (r["kind"], r["prog"], r["rules"], r["case"], r["family"]) == (kind, prog, str(size), case, family):
                return r
        return None

    parts, worst = [], None
    for size in sorted({sizes[0], sizes[-1]}):
        for prog in ("tc", "xdp"):
            for fam in ("v4", "v6"):
                label = f"{size} rule{'s' if size != 1 else ''} {prog} {fam}"
                t = ratio_range(find("ratio", prog, size, "established_over_article", fam))
                if t:
                    parts.append(f"{label} {_fmt3(t)}")
                else:
                    a, b = find("datapath", prog, size, "established", fam), find("article", prog, size, "allowed", "v4")
                    a, b = (float(x["ns_per_packet"]) if x else float("nan") for x in (a, b))
                    if not (_ok(a) and _ok(b) and b):
                        continue
                    t = (a / b,) * 3
                    parts.append(f"{label} {a:.0f}/{b:.0f} ns = {a / b:.2f}x")
                worst = t if worst is None else tuple(max(x, y) for x, y in zip(worst, t))
    if worst is None:
        return (float("nan"),) * 3, "n/a"
    return worst, "; ".join(parts)


def _testrun_ratio(rows, n):
    """(worst ratio, text) of podfence (its stub and engine) over the article's program at
    n rules (or the largest size <= n), like for like: single-run cases over
    the article's single runs, repeat loops over its loops; tc and xdp."""
    rows = [r for r in rows if r.get("kind") in ("datapath", "article")]
    sizes = sorted({int(r["rules"]) for r in rows if int(r["rules"]) <= n})
    if not sizes:
        return float("nan"), "n/a"
    size = str(sizes[-1])

    def ns(kind, prog, case, family=None):
        for r in rows:
            if (r["kind"], r["prog"], r["rules"], r["case"]) == (kind, prog, size, case) \
                    and (family is None or r["family"] == family):
                return float(r["ns_per_packet"])
        return float("nan")

    parts, worst = [], float("nan")
    for prog in ("tc", "xdp"):
        for fam in ("v4", "v6"):
            for case, ref in (("new", "allowed_1"), ("established", "allowed"), ("denied", "allowed")):
                a, b = ns("datapath", prog, case, fam), ns("article", prog, ref)
                if _ok(a) and _ok(b) and b:
                    ratio = a / b
                    worst = ratio if not _ok(worst) else max(worst, ratio)
                    parts.append(f"{prog} {fam} {case} {a:.0f}/{b:.0f} ns = {ratio:.2f}x")
    return worst, (f"at {size} rules: " + "; ".join(parts)) if parts else "n/a"
