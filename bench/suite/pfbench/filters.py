"""The filters under test. Each one attaches to a fresh Topology, can swap
its rule set in place (rule scaling) and is removed with the topology.

Where each one sits (traffic = the pod's egress, received on pfbh):
  article-tc           tcx ingress on pfbh (the article's own attach point)
  article-xdp-*        XDP on pfbh, driver (native) or generic mode
  empty-tc, empty-xdp-generic  a program that only passes the packet on, at
                       the article's hooks (program time's floor, "progtime")
  podfence-tc          podfence CNI ADD, mode tc: tcx ingress+egress on pfbh
  podfence-xdp-*       podfence CNI ADD, mode xdp: XDP on pfbh and on eth0
  compare-tc, compare-xdp-generic  the same with --compare's binary, on a
                       bpffsRoot of its own (its own datapath): a change's
                       before and after in one run
  iptables-linear      iptables-legacy INPUT -> per-pod chain, one rule each
  nft-linear           nftables input -> per-pod chain, one rule each
  nft-set              nftables input -> one lookup in an interval set
"""
import os

from . import cni, rules as R
from .topo import HOST_IF, HOST_MAC, POD_IF, POD_MAC, POD_V4, POD_V6
from .util import BenchError, log, run


class Filter:
    name = "none"

    def __init__(self, ctx, topo):
        self.ctx, self.topo = ctx, topo

    def setup(self, rules, family):
        """Attach with this rule set."""

    def replace(self, rules, family):
        """Swap the rule set; default: none to swap."""
        self.setup(rules, family)

    def teardown(self):
        """Anything the netns deletion does not undo."""


class NoFilter(Filter):
    name = "none"


class Article(Filter):
    def __init__(self, ctx, topo, hook):
        super().__init__(ctx, topo)
        self.hook = hook
        self.name = {"tcx-ingress": "article-tc", "xdp-generic": "article-xdp-generic",
                     "xdp-native": "article-xdp-native"}[hook]
        self.pin_dir = os.path.join(ctx.bpffs, f"{topo.name}-article")

    def setup(self, rules, family):
        ports = os.path.join(self.ctx.tmp, f"{self.topo.name}.ports")
        with open(ports, "w") as f:
            f.write(R.article_ports(rules))
        os.makedirs(self.pin_dir, exist_ok=True)
        run([self.ctx.tool("pfb_attach"), "--obj", self.ctx.tool("article.bpf.o"),
             "--ifname", HOST_IF, "--hook", self.hook, "--ports-file", ports,
             "--pin-dir", self.pin_dir], netns=self.topo.node)

    def teardown(self):
        # Unpinning the tcx link detaches it; XDP goes with the netns.
        for f in os.listdir(self.pin_dir) if os.path.isdir(self.pin_dir) else ():
            os.unlink(os.path.join(self.pin_dir, f))


class Empty(Article):
    """A do-nothing program on the article's hook: what a program costs there
    before it does anything."""

    def __init__(self, ctx, topo, hook):
        super().__init__(ctx, topo, hook)
        self.name = self.name.replace("article-", "empty-")
        self.pin_dir = os.path.join(ctx.bpffs, f"{topo.name}-empty")

    def setup(self, rules, family):
        os.makedirs(self.pin_dir, exist_ok=True)
        run([self.ctx.tool("pfb_attach"), "--empty", "--ifname", HOST_IF, "--hook", self.hook,
             "--pin-dir", self.pin_dir], netns=self.topo.node)


class Podfence(Filter):
    def __init__(self, ctx, topo, mode, xdp_mode="native", label="podfence"):
        super().__init__(ctx, topo)
        self.mode, self.xdp_mode = mode, xdp_mode
        self.name = f"{label}-tc" if mode == "tc" else f"{label}-xdp-{xdp_mode}"
        self.cid = f"pfb-{ctx.run_id}-{topo.name}"
        self.added = False
        self.binary, self.root = ctx.podfence, ctx.bpffs
        if label == "compare":
            # Another build may be another datapath ABI: never on this one's root.
            self.binary, self.root = ctx.compare, os.path.join(ctx.bpffs, "compare-dp")
            os.makedirs(self.root, exist_ok=True)

    def _conf(self, policy, with_prev=True):
        prev = cni.prev_result(HOST_IF, HOST_MAC, POD_IF, POD_MAC, self.topo.pod_path,
                               [f"{POD_V4}/24", f"{POD_V6}/64"]) if with_prev else None
        return cni.podfence_conf(self.root, self.ctx.podfence_log, self.mode,
                                 self.xdp_mode, policy, prev)

    def _invoke(self, verb, conf):
        return cni.invoke(self.binary, verb, conf, container_id=self.cid, ifname=POD_IF,
                          netns_path=self.topo.pod_path, node_netns=self.topo.node)

    def setup(self, rules, family):
        _, secs = self._invoke("ADD", self._conf(R.podfence_policy(rules)))
        self.added = True
        log(f"{self.name}: ADD with {len(rules)} rules took {secs*1000:.0f} ms")

    def replace(self, rules, family):
        """`podfence update`: the atomic policy swap operators use."""
        path = os.path.join(self.ctx.tmp, f"{self.topo.name}.policy.json")
        with open(path, "w") as f:
            f.write(R.podfence_policy(rules))
        proc = run([self.binary, "update", self.cid, POD_IF, path,
                    "--bpffs-root", self.root], netns=self.topo.node, check=False)
        if proc.returncode != 0:
            log(f"{self.name}: `podfence update` failed ({proc.stderr.strip()[:300]}); "
                "falling back to DEL + ADD")
            self.teardown()
            self.setup(rules, family)

    def teardown(self):
        if self.added:
            try:
                self._invoke("DEL", self._conf(None, with_prev=True))
            except BenchError as e:
                log(f"{self.name}: DEL failed: {e}")
            self.added = False


class Iptables(Filter):
    name = "iptables-linear"

    def setup(self, rules, family):
        tool = "iptables-legacy-restore" if family == 4 else "ip6tables-legacy-restore"
        run([tool], netns=self.topo.node, input=R.iptables_restore(rules, family))


class Nft(Filter):
    def __init__(self, ctx, topo, kind):
        super().__init__(ctx, topo)
        self.kind = kind
        self.name = f"nft-{kind}"

    def setup(self, rules, family):
        text = (R.nft_linear if self.kind == "linear" else R.nft_set)(rules, family)
        # Replace atomically: delete the old table in the same transaction.
        run(["nft", "-f", "-"], netns=self.topo.node,
            input="table inet pfb {}\ndelete table inet pfb\n" + text)


def make(ctx, topo, name):
    if name == "none":
        return NoFilter(ctx, topo)
    if name == "article-tc":
        return Article(ctx, topo, "tcx-ingress")
    if name.startswith("article-xdp-"):
        return Article(ctx, topo, name.removeprefix("article-"))
    if name == "empty-tc":
        return Empty(ctx, topo, "tcx-ingress")
    if name.startswith("empty-xdp-"):
        return Empty(ctx, topo, name.removeprefix("empty-"))
    if name == "podfence-tc":
        return Podfence(ctx, topo, "tc")
    if name.startswith("podfence-xdp-"):
        return Podfence(ctx, topo, "xdp", name.removeprefix("podfence-xdp-"))
    if name == "compare-tc":
        return Podfence(ctx, topo, "tc", label="compare")
    if name.startswith("compare-xdp-"):
        return Podfence(ctx, topo, "xdp", name.removeprefix("compare-xdp-"), label="compare")
    if name == "iptables-linear":
        return Iptables(ctx, topo)
    if name.startswith("nft-"):
        return Nft(ctx, topo, name.removeprefix("nft-"))
    raise ValueError(f"unknown filter {name}")
