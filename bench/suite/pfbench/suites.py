"""The five parts of the suite. Each appends plain dict rows to ctx.rows[<part>]."""
import contextlib
import json
import os
import time

from . import cni, filters, rules as R, traffic
from .topo import Topology
from .util import BenchError, ip_batch, log, run, timed_run

MATRIX_CONFIGS = [
    "article-tc", "article-xdp-generic", "article-xdp-native",
    "podfence-tc", "podfence-xdp-generic", "podfence-xdp-native",
    "iptables-linear", "nft-linear", "nft-set",
]
SCALING_CONFIGS = ["podfence-tc", "iptables-linear", "nft-set"]
# With --compare, its binary runs next to this one in the data-plane parts:
# after each podfence config in matrix and scaling, last in progtime's rounds.
COMPARE_CONFIGS = {"podfence-tc": "compare-tc", "podfence-xdp-generic": "compare-xdp-generic"}


def _with_compare(ctx, configs):
    if not ctx.compare:
        return configs
    return [c for cfg in configs for c in (cfg, COMPARE_CONFIGS.get(cfg)) if c]


def _check(cfg, metric, m):
    """Behaviour, not only speed: a filter must pass the allowed flow and
    drop the denied one, or its numbers mean nothing."""
    if metric == "pps_allowed" and m["received"] < 0.9 * m["sent"]:
        return f"allowed flow lost {1 - m['received'] / max(m['sent'], 1):.0%}"
    if metric == "pps_denied" and cfg != "none" and m["received"] > 0.01 * m["sent"]:
        return f"denied flow leaked {m['received'] / max(m['sent'], 1):.0%}"
    if m.get("replies", 0) > 0.01 * m["sent"]:
        # Its replies would cross the filter's other direction and the CPU.
        return f"the receiver answered {m['replies']} of {m['sent']} packets"
    return "ok"


def _measure(ctx, topo, cfg, metric, family, pps_secs):
    if metric == "tcp":
        m = traffic.tcp(ctx, topo, duration=ctx.p["tcp_secs"])
        m["check"] = "ok" if m["value"] > 0 else "no throughput"
    else:
        m = traffic.blast(ctx, topo, allowed=metric == "pps_allowed", family=family,
                          duration=pps_secs)
        m["check"] = _check(cfg, metric, m)
    traffic.settle()
    return m


def _interleaved(ctx, part, cfg, topo, base, metrics, family, nrules, reps, pps_secs, extra=None):
    """Runs each metric on the filter and on the baseline topology back to
    back, alternating which goes first, so load drift hits both alike."""
    for rep in range(reps):
        pairs = [("filter", cfg, topo), ("baseline", "none", base)]
        if rep % 2:
            pairs.reverse()
        for metric in metrics:
            for role, name, t in pairs:
                m = _measure(ctx, t, name, metric, family, pps_secs)
                row = {"config": cfg, "family": family, "rules": nrules, "metric": metric,
                       "rep": rep, "role": role, **(extra or {}), **m}
                ctx.rows[part].append(row)
                if m["check"] != "ok":
                    log(f"CHECK {cfg} {metric} {role}: {m['check']}")


def matrix(ctx, base):
    nrules = ctx.p["matrix_rules"]
    rules = R.make_rules(nrules, 4)
    for i, cfg in enumerate(_with_compare(ctx, MATRIX_CONFIGS)):
        if cfg.startswith("podfence") and not ctx.podfence:
            ctx.missing.append(f"matrix/{cfg}: podfence binary not found")
            continue
        log(f"matrix: {cfg} ({nrules} rules, {ctx.p['reps']} reps)")
        with Topology(ctx.run_id, f"m{i}") as topo:
            f = filters.make(ctx, topo, cfg)
            try:
                t0 = time.perf_counter()
                f.setup(rules, 4)
                setup_s = time.perf_counter() - t0
                _interleaved(ctx, "matrix", cfg, topo, base,
                             ["pps_allowed", "pps_denied", "tcp"], 4, nrules, ctx.p["reps"],
                             ctx.p["pps_secs"], {"setup_s": setup_s})
            except BenchError as e:
                ctx.missing.append(f"matrix/{cfg}: {e}")
                log(f"matrix: {cfg} FAILED: {e}")
            finally:
                f.teardown()


def scaling(ctx, base):
    for i, cfg in enumerate(_with_compare(ctx, SCALING_CONFIGS)):
        if cfg.startswith("podfence") and not ctx.podfence:
            ctx.missing.append(f"scaling/{cfg}: podfence binary not found")
            continue
        with Topology(ctx.run_id, f"s{i}") as topo:
            f = filters.make(ctx, topo, cfg)
            attached = False
            try:
                for family in (4, 6):
                    for n in ctx.p["scaling_rules"]:
                        rules = R.make_rules(n, family)
                        t0 = time.perf_counter()
                        (f.replace if attached else f.setup)(rules, family)
                        attached = True
                        setup_s = time.perf_counter() - t0
                        log(f"scaling: {cfg} v{family} {n} rules (load {setup_s:.1f}s)")
                        _interleaved(ctx, "scaling", cfg, topo, base,
                                     ["pps_allowed", "pps_denied"], family, n,
                                     ctx.p["scaling_reps"], ctx.p["scaling_secs"],
                                     {"setup_s": setup_s})
            except BenchError as e:
                ctx.missing.append(f"scaling/{cfg}: {e}")
                log(f"scaling: {cfg} FAILED: {e}")
            finally:
                f.teardown()


PROGTIME_HOOKS = ["tc", "xdp-generic"]


def progtime(ctx):
    """Each BPF filter's own run time per packet in the datapath, from the
    kernel's run-time statistics: a do-nothing program, the article's and
    podfence's on the same hook (tcx ingress, XDP generic), each in its own
    topology, all attached at once. A round gives each one short window in
    turn (the order reversed every other round), so the VM's drift spreads
    over the three alike. Flows (`progtime_flows`): "allowed", an
    established flow's ACKs; "denied", the matrix's; "allowed_rst", the
    allowed flow's RSTs (what the matrix sent until 2026-12-03; podfence
    sends FIN and RST through conntrack). Without podfence only the first
    two programs run; with --compare, its binary's takes its turn too."""
    nrules = ctx.p["matrix_rules"]
    rules = R.make_rules(nrules, 4)
    for hook in PROGTIME_HOOKS:
        cfgs = [f"empty-{hook}", f"article-{hook}"] + ([f"podfence-{hook}"] if ctx.podfence else [])
        cfgs += [f"compare-{hook}"] if ctx.podfence and ctx.compare else []
        log(f"progtime: {', '.join(cfgs)} ({nrules} rules, {ctx.p['progtime_rounds']} rounds)")
        try:
            with contextlib.ExitStack() as stack:
                topos = {}
                for i, cfg in enumerate(cfgs):
                    topo = stack.enter_context(Topology(ctx.run_id, f"p{hook[0]}{i}"))
                    f = filters.make(ctx, topo, cfg)
                    stack.callback(f.teardown)
                    f.setup(rules, 4)
                    topos[cfg] = topo
                for rnd in range(ctx.p["progtime_rounds"]):
                    for metric in ctx.p["progtime_flows"]:
                        allowed = metric != "denied"
                        for cfg in cfgs if rnd % 2 == 0 else cfgs[::-1]:
                            m = traffic.blast(ctx, topos[cfg], allowed=allowed, family=4,
                                              duration=ctx.p["progtime_secs"], bpf_stats=True,
                                              rst=metric == "allowed_rst")
                            # The do-nothing program passes the denied flow too.
                            m["check"] = _check("none" if cfg.startswith("empty") else cfg,
                                                "pps_allowed" if allowed else "pps_denied", m)
                            if m["prog_runs"] < 0.9 * m["sent"]:
                                m["check"] = (f"the filter's program ran {m['prog_runs']} times for "
                                              f"{m['sent']} packets")
                            traffic.settle()
                            ctx.rows["progtime"].append({"config": cfg, "hook": hook, "rules": nrules,
                                                         "metric": metric, "round": rnd, **m})
                            if m["check"] != "ok":
                                log(f"CHECK progtime {cfg} {metric}: {m['check']}")
        except BenchError as e:
            ctx.missing.append(f"progtime/{hook}: {e}")
            log(f"progtime: {hook} FAILED: {e}")


def testrun(ctx):
    """BPF_PROG_TEST_RUN ns/packet from bench/testrun's tool, kept verbatim."""
    if not ctx.testrun:
        ctx.missing.append("testrun: podfence_testrun_bench not found")
        return
    args = [ctx.testrun] + ctx.p["testrun_args"]
    log("testrun: " + " ".join(args))
    try:
        out = run(args, timeout=600).stdout
    except BenchError as e:
        ctx.missing.append(f"testrun: {e}")
        return
    with open(os.path.join(ctx.out, "testrun.csv"), "w") as f:
        f.write(out)
    parse_testrun(ctx)
    if not ctx.rows["testrun"]:
        ctx.missing.append("testrun: no CSV rows")


def parse_testrun(ctx):
    path = os.path.join(ctx.out, "testrun.csv")
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.strip() and not l.startswith("#")]
    if len(lines) < 2:
        return
    header = [h.strip() for h in lines[0].split(",")]
    for line in lines[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) == len(header):
            row = dict(zip(header, cells))
            # bench/testrun names the number column `value` (ns per packet,
            # or bytes for memory rows).
            row.setdefault("ns_per_packet", row.get("value", ""))
            ctx.rows["testrun"].append(row)


# ---- control plane ---------------------------------------------------------

class _Node:
    """One node netns and one shared netns holding every pod's interface
    (CNI_IFNAME p<i>): cheap pods, but each is a real veth pair."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.node = f"pfb-{ctx.run_id}-{name}-node"
        self.pods = f"pfb-{ctx.run_id}-{name}-pods"
        self.count = 0

    def __enter__(self):
        run(["ip", "netns", "add", self.node])
        run(["ip", "netns", "add", self.pods])
        return self

    def __exit__(self, *exc):
        run(["ip", "netns", "del", self.pods], check=False)
        run(["ip", "netns", "del", self.node], check=False)

    def add_pods(self, n):
        first = self.count
        node_cmds, pod_cmds = [], []
        for i in range(first, first + n):
            node_cmds += [f"link add h{i} type veth peer name p{i} netns {self.pods}",
                          f"link set h{i} up"]
            pod_cmds.append(f"link set p{i} up")
        ip_batch(self.node, node_cmds)
        ip_batch(self.pods, pod_cmds)
        self.count += n
        return range(first, first + n)

    def prev(self, i, version):
        p = cni.prev_result(f"h{i}", "", f"p{i}", "", f"/run/netns/{self.pods}",
                            [f"10.{252 + i // 65536}.{i // 256 % 256}.{i % 256}/32"])
        p["cniVersion"] = version
        for iface in p["interfaces"]:
            iface.pop("mac")
        return p

    def invoke(self, binary, verb, conf, i):
        return cni.invoke(binary, verb, conf, container_id=f"pfb-{self.ctx.run_id}-pod{i}",
                          ifname=f"p{i}", netns_path=f"/run/netns/{self.pods}",
                          node_netns=self.node)


def _small_policy():
    return R.podfence_policy(R.make_rules(1, 4))


def _chain_confs(ctx, node, i):
    """bandwidth -> firewall -> podfence, one conflist's worth, cniVersion 1.0.0
    (the newest the Debian reference plugins speak)."""
    v = "1.0.0"
    bw = {"cniVersion": v, "name": "pfb-chain", "type": "bandwidth",
          "capabilities": {"bandwidth": True},
          "runtimeConfig": {"bandwidth": {"ingressRate": 1_000_000_000, "ingressBurst": 1_000_000,
                                          "egressRate": 1_000_000_000, "egressBurst": 1_000_000}}}
    fw = {"cniVersion": v, "name": "pfb-chain", "type": "firewall", "backend": "iptables"}
    pf = cni.podfence_conf(ctx.bpffs, ctx.podfence_log, "tc", policy=_small_policy())
    pf["cniVersion"] = v
    pf["name"] = "pfb-chain"
    return [("bandwidth", "/usr/lib/cni/bandwidth", bw), ("firewall", "/usr/lib/cni/firewall", fw),
            ("podfence", ctx.podfence, pf)]


def control_chain(ctx):
    """ADD and DEL latency of each plugin of one chain, same pods, same run.
    A podfence failure is reported and the reference plugins still measured."""
    k = ctx.p["chain_pods"]
    broken = set()
    with _Node(ctx, "cpc") as node:
        # One more pod than measured: the first ADD on a node loads the
        # datapath, reported apart (test "chain_first").
        pods = node.add_pods(k + 1)
        # One pod after the other through its whole life, ADD then DEL, as on
        # a node where pods come and go (a freed slot's emptied policy map
        # serves the next pod: PolicyStore::clear).
        for i, verb in ((i, v) for i in pods for v in ("ADD", "DEL")):
            prev = node.prev(i, "1.0.0")
            chain = _chain_confs(ctx, node, i)
            for plugin, binary, conf in (chain if verb == "ADD" else reversed(chain)):
                if plugin in broken:
                    continue
                try:
                    out, secs = node.invoke(binary, verb, dict(conf, prevResult=prev), i)
                except BenchError as e:
                    if plugin != "podfence":
                        raise
                    broken.add(plugin)
                    ctx.missing.append(f"control/chain: {e}")
                    continue
                if verb == "ADD" and out:
                    prev = out
                ctx.rows["control"].append({"test": "chain" if i != pods[0] else "chain_first",
                                            "plugin": plugin, "verb": verb,
                                            "pod": i, "pods_before": 0, "secs": secs})
            if verb == "DEL":
                # What the primary plugin's DEL does last. It also frees what
                # podfence's DEL left on the veth, so a cost moved from
                # podfence's DEL to the device's deletion shows here.
                _, secs = timed_run(["ip", "-n", node.node, "link", "del", f"h{i}"])
                ctx.rows["control"].append({"test": "chain" if i != pods[0] else "chain_first",
                                            "plugin": "veth-delete", "verb": "DEL",
                                            "pod": i, "pods_before": 0, "secs": secs})


def _bpf_objects(kind):
    out = run(["bpftool", "-j", kind, "show"], check=False).stdout
    try:
        return {o["id"]: o for o in json.loads(out or "[]")}
    except json.JSONDecodeError:
        return {}


def control_scale(ctx):
    """podfence ADD latency as pods accumulate on one node, DEL latency on the
    way down, and what each pod costs in kernel memory."""
    total = ctx.p["scale_pods"]
    policy = _small_policy()
    with _Node(ctx, "cps") as node:
        t0 = time.perf_counter()
        node.add_pods(total + 1)  # the last one is the probe (_scale_probes)
        log(f"control: created {total + 1} veth pairs in {time.perf_counter() - t0:.1f}s")
        conf = cni.podfence_conf(ctx.bpffs, ctx.podfence_log, "tc", policy=policy)
        maps0, progs0 = _bpf_objects("map"), _bpf_objects("prog")
        # The first ADD on a node loads the shared datapath: recorded apart.
        for i in range(total):
            c = dict(conf, prevResult=node.prev(i, cni.CNI_VERSION))
            _, secs = node.invoke(ctx.podfence, "ADD", c, i)
            ctx.rows["control"].append({"test": "scale", "plugin": "podfence", "verb": "ADD",
                                        "pod": i, "pods_before": i, "secs": secs})
        maps1, progs1 = _bpf_objects("map"), _bpf_objects("prog")
        new_maps = [m for k, m in maps1.items() if k not in maps0]
        new_progs = [p for k, p in progs1.items() if k not in progs0]
        _scale_probes(ctx, node, total, conf, policy)
        ctx.memory = {
            "pods": total,
            "new_maps": len(new_maps), "new_progs": len(new_progs),
            "map_bytes": sum(m.get("bytes_memlock", 0) for m in new_maps),
            "prog_bytes": sum(p.get("bytes_memlock", 0) for p in new_progs),
            "bpffs_entries": sum(len(fs) + len(ds) for _, ds, fs in os.walk(ctx.bpffs)),
        }
        for i in reversed(range(total)):
            c = dict(conf, prevResult=node.prev(i, cni.CNI_VERSION))
            _, secs = node.invoke(ctx.podfence, "DEL", c, i)
            ctx.rows["control"].append({"test": "scale", "plugin": "podfence", "verb": "DEL",
                                        "pod": i, "pods_before": i, "secs": secs})


def _scale_probes(ctx, node, probe, conf, policy):
    """ADD at `probe` pods on the node against ADD at 1, side by side: one
    more pod goes through ADD and DEL on this node and on a reference node
    (its own bpffsRoot) holding 1 pod, in turn, pair after pair. Each pair
    sees the same moment of the machine; the growth loop above cannot tell
    a trend with the pods from the run's drift (grace periods, load)."""
    ref_root = os.path.join(ctx.bpffs, "ref")
    os.makedirs(ref_root, exist_ok=True)
    ref_conf = cni.podfence_conf(ref_root, ctx.podfence_log, "tc", policy=policy)
    with _Node(ctx, "cpr") as ref:
        ref.add_pods(2)
        ref.invoke(ctx.podfence, "ADD", dict(ref_conf, prevResult=ref.prev(0, cni.CNI_VERSION)), 0)
        sides = [("ref", ref, ref_conf, 1, 1), ("node", node, conf, probe, probe)]
        # Pair 0 is not recorded: each probe's first ADD allocates its slot's
        # policy map, which later ADDs of that slot refill.
        for k in range(ctx.p["scale_probes"] + 1):
            for side, n, c, i, before in (sides if k % 2 else sides[::-1]):
                for verb in ("ADD", "DEL"):
                    _, secs = n.invoke(ctx.podfence, verb, dict(c, prevResult=n.prev(i, cni.CNI_VERSION)), i)
                    if k:
                        ctx.rows["control"].append({"test": f"scale_probe_{side}", "plugin": "podfence",
                                                    "verb": verb, "pod": k, "pods_before": before,
                                                    "secs": secs})
        ref.invoke(ctx.podfence, "DEL", dict(ref_conf, prevResult=ref.prev(0, cni.CNI_VERSION)), 0)


def control_backends(ctx):
    """podfence alone on each hook it offers, pod by pod on one node: ADD,
    DEL, then the veth's deletion. tcx waits for an RCU grace period per hook
    at each attach and detach (also at the device's deletion, if programs are
    left there: kernel/bpf/tcx.c, tcx_entry_sync); XDP (generic and native)
    when a pod's program enters and leaves the kernel's XDP dispatcher;
    legacy cls_bpf waits for none (bench/README.md, stop 29)."""
    k = ctx.p["chain_pods"]
    with _Node(ctx, "cpb") as node:
        for i in node.add_pods(len(cni.HOOKS) * k):
            label, keys = cni.HOOKS[i % len(cni.HOOKS)]
            conf = dict(cni.podfence_conf(ctx.bpffs, ctx.podfence_log, "tc", policy=_small_policy()),
                        **keys, prevResult=node.prev(i, cni.CNI_VERSION))
            for verb in ("ADD", "DEL"):
                _, secs = node.invoke(ctx.podfence, verb, conf, i)
                ctx.rows["control"].append({"test": "backend", "plugin": label, "verb": verb,
                                            "pod": i, "pods_before": 0, "secs": secs})
            _, secs = timed_run(["ip", "-n", node.node, "link", "del", f"h{i}"])
            ctx.rows["control"].append({"test": "backend", "plugin": label, "verb": "veth-delete",
                                        "pod": i, "pods_before": 0, "secs": secs})


def control_compare(ctx):
    """This binary against another (--compare), pod by pod: each pair is one
    pod's ADD and DEL with each binary in turn (which goes first alternates),
    on one node, each binary on its own bpffsRoot (so its own datapath).
    Before/after figures of a change, taken at the same moments of the
    machine instead of in two runs of it."""
    sides = []
    for side, binary in (("this", ctx.podfence), ("other", ctx.compare)):
        root = os.path.join(ctx.bpffs, f"compare-{side}")
        os.makedirs(root, exist_ok=True)
        sides.append((side, binary, cni.podfence_conf(root, ctx.podfence_log, "tc", policy=_small_policy())))
    with _Node(ctx, "cpx") as node:
        pods = iter(node.add_pods(2 * (ctx.p["compare_pairs"] + 1)))
        # Pair 0 is not recorded: each binary's first ADD loads its datapath.
        for k in range(ctx.p["compare_pairs"] + 1):
            for side, binary, conf in (sides if k % 2 else sides[::-1]):
                i = next(pods)
                for verb in ("ADD", "DEL"):
                    _, secs = node.invoke(binary, verb, dict(conf, prevResult=node.prev(i, cni.CNI_VERSION)), i)
                    if k:
                        ctx.rows["control"].append({"test": "compare", "plugin": side, "verb": verb,
                                                    "pod": k, "pods_before": 0, "secs": secs})
                timed_run(["ip", "-n", node.node, "link", "del", f"h{i}"])


def control(ctx):
    if not ctx.podfence:
        ctx.missing.append("control: podfence binary not found")
        return
    parts = (control_compare,) if ctx.compare else ()
    for part in parts + (control_chain, control_backends, control_scale):
        try:
            log(f"control: {part.__name__}")
            part(ctx)
        except BenchError as e:
            ctx.missing.append(f"control/{part.__name__}: {e}")
            log(f"control: {part.__name__} FAILED: {e}")
