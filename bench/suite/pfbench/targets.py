"""The issue's targets and the article's claims, judged from this run's numbers."""
import math

from .report import _r


def _ok(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def _get(agg, key, metric, field="ratio"):
    a = agg.get(key, {}).get(metric)
    return a[field] if a else float("nan")


def _verdict(cond):
    if cond is None:
        return "NOT MEASURED"
    return "HOLDS" if cond else "DOES NOT HOLD"


def write(rep, matrix, scaling, control, testrun_rows, p):
    w = rep.w
    w("### Targets")
    w()
    w("| target | measured | verdict |")
    w("|---|---|---|")
    n = p["matrix_rules"]
    big = 10000 if 10000 in p["scaling_rules"] else max(p["scaling_rules"])

    al = _get(matrix, ("podfence-tc",), "pps_allowed")
    al_cpu = _cpu_rel(matrix, "podfence-tc", "pps_allowed")
    w(f"| podfence tc allowed pps >= 0.95x no filter ({n} rules) | pps {_r(al)}, CPU-derived "
      f"{_r(1 / al_cpu if _ok(al_cpu) else al_cpu)} | {_verdict(al >= 0.95 if _ok(al) else None)} |")
    tcp = _get(matrix, ("podfence-tc",), "tcp")
    tcp_cpu = _cpu_rel(matrix, "podfence-tc", "tcp")
    w(f"| podfence tc TCP >= 0.95x no filter ({n} rules) | {_r(tcp)} (CPU per KiB "
      f"{_r(tcp_cpu)}x no filter's) | {_verdict(tcp >= 0.95 if _ok(tcp) else None)} |")

    for fam in (4, 6):
        for metric, label in (("pps_allowed", "allowed, established"), ("pps_denied", "denied, policy lookup")):
            r, r_cpu = _own_ratio(scaling, "podfence-tc", fam, big, metric)
            ipt, ipt_cpu = _own_ratio(scaling, "iptables-linear", fam, big, metric)
            w(f"| podfence v{fam} at {big} rules >= 0.95x its 1-rule pps ({label}) | pps {_r(r)}, "
              f"CPU-derived {_r(r_cpu)} (iptables: {_r(ipt)}, {_r(ipt_cpu)}) | "
              f"{_verdict(r >= 0.95 if _ok(r) else None)} |")

    ratio = _testrun_ratio(testrun_rows, big)
    w(f"| podfence test_run ns/packet <= 1.5x the article's (worst case of the list) | {ratio[1]} | "
      f"{_verdict(ratio[0] <= 1.5 if _ok(ratio[0]) else None)} |")

    chain = control.get("chain", {})
    if "podfence" in chain and "bandwidth" in chain:
        w(f"| ADD+DEL <= bandwidth plugin's, same chain | podfence {chain['podfence']:.1f} ms vs "
          f"bandwidth {chain['bandwidth']:.1f} ms ({_r(chain['podfence'] / chain['bandwidth'])}x) | "
          f"{_verdict(chain['podfence'] <= chain['bandwidth'])} |")
    else:
        w("| ADD+DEL <= bandwidth plugin's, same chain | n/a | NOT MEASURED |")
    levels = p["scale_levels"]
    lo, hi = control.get(f"add_{levels[0]}"), control.get(f"add_{levels[-1]}")
    if _ok(lo) and _ok(hi):
        w(f"| ADD at {levels[-1]} pods <= 1.2x ADD at {levels[0]} pod | {hi:.1f} ms vs {lo:.1f} ms "
          f"({_r(hi / lo)}x) | {_verdict(hi <= 1.2 * lo)} |")
    else:
        w(f"| ADD at {levels[-1]} pods <= 1.2x ADD at {levels[0]} pod | n/a | NOT MEASURED |")
    w()

    w("### The article's claims")
    w()
    # CPU per packet relative to each config's own interleaved baseline, so
    # the two are comparable although measured at different times.
    tc_cpu = _cpu_rel(matrix, "article-tc", "pps_allowed")
    xg_cpu = _cpu_rel(matrix, "article-xdp-generic", "pps_allowed")
    tc_pps = _get(matrix, ("article-tc",), "pps_allowed")
    xg_pps = _get(matrix, ("article-xdp-generic",), "pps_allowed")
    tc_tcp = _cpu_rel(matrix, "article-tc", "tcp")
    xg_tcp = _cpu_rel(matrix, "article-xdp-generic", "tcp")
    if _ok(tc_cpu) and _ok(xg_cpu):
        saving = 1 - xg_cpu / tc_cpu
        tcp_saving = 1 - xg_tcp / tc_tcp if _ok(tc_tcp) and _ok(xg_tcp) else float("nan")
        tc_de = _cpu_rel(matrix, "article-tc", "pps_denied")
        xg_de = _cpu_rel(matrix, "article-xdp-generic", "pps_denied")
        de_saving = 1 - xg_de / tc_de if _ok(tc_de) and _ok(xg_de) else float("nan")
        if saving >= 0.05:
            verdict = "supported: generic XDP is at least 5% cheaper per packet"
        elif saving > -0.05:
            verdict = "NOT supported: the difference is within +-5%"
        else:
            verdict = "contradicted: generic XDP costs MORE per packet than tcx"
        w(f"- \"XDP beats TC by 5-15% CPU even in generic mode on veth\": generic XDP used "
          f"{saving:+.1%} less CPU per allowed packet than tcx (each relative to its interleaved "
          f"baseline; pps ratio to no filter: XDP generic {_r(xg_pps)}, tcx {_r(tc_pps)}); per "
          f"dropped packet {de_saving:+.1%}; per KiB of one TCP stream {tcp_saving:+.1%}. "
          f"Verdict (allowed traffic): {verdict}.")
    else:
        w("- \"XDP beats TC by 5-15% CPU even in generic mode\": not measured in this run.")
    xn = _get(matrix, ("article-xdp-native",), "pps_allowed")
    xn_tcp = _get(matrix, ("article-xdp-native",), "tcp")
    if _ok(xn):
        w(f"- \"veth has no native XDP\": false. The program attached in driver mode "
          f"(XDP_FLAGS_DRV_MODE) on the veth and filtered: allowed pps {_r(xn)}x no filter; one "
          f"TCP stream {_r(xn_tcp)}x, because native XDP on a veth turns TSO/GSO off on its peer.")
    else:
        w("- \"veth has no native XDP\": not measured in this run (native attach failed or skipped).")
    w()


def _own_ratio(agg, cfg, fam, n, metric):
    """(pps at n / pps at 1 rule, CPU per packet at 1 / at n) of one filter."""
    one = agg.get((cfg, fam, 1), {}).get(metric)
    at = agg.get((cfg, fam, n), {}).get(metric)
    if not one or not at:
        return float("nan"), float("nan")
    cpu = one["cpu_f"] / at["cpu_f"] if _ok(at["cpu_f"]) and at["cpu_f"] else float("nan")
    return at["filter"][1] / one["filter"][1], cpu


def _cpu_rel(agg, cfg, metric):
    a = agg.get((cfg,), {}).get(metric)
    if not a or not _ok(a["cpu_f"]) or not _ok(a["cpu_b"]) or not a["cpu_b"]:
        return float("nan")
    return a["cpu_f"] / a["cpu_b"]


def _testrun_ratio(rows, n):
    """(worst ratio, text) of podfence's engine over the article's program at
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
    return worst, f"at {size} rules: " + "; ".join(parts) if parts else "n/a"
