"""The measured topology: a pod netns and a node netns joined by one veth.

    [pod netns]  eth0 ==veth== pfbh  [node netns]
    sender (pfb_blast,          receiver (kernel stack: TCP drops the
    iperf3 client)              packets unanswered, iperf3 server);
                                filters attach here

Traffic flows FROM the pod (the pod's egress), so every filter sits on the
RECEIVING side of the veth, where podfence attaches for that direction: tcx
ingress and XDP on the host-side veth pfbh; iptables/nftables in the node's
input path. podfence runs in the node netns (its "host" netns) and also
attaches its ingress hooks (tcx egress on pfbh, XDP on the pod's eth0), as in
production. Both ends have fixed MACs and addresses; several topologies can
exist at once because each lives in its own pair of namespaces.
"""
import os
import signal
import subprocess

from .util import ip, log, run

POD_MAC = "02:00:00:00:00:02"
HOST_MAC = "02:00:00:00:00:01"
POD_V4, HOST_V4 = "10.250.0.2", "10.250.0.1"
POD_V6, HOST_V6 = "fd00:250::2", "fd00:250::1"
HOST_IF, POD_IF = "pfbh", "eth0"
IPERF_PORT = 5201


class Topology:
    def __init__(self, run_id, name):
        self.name = name
        self.pod = f"pfb-{run_id}-{name}-pod"
        self.node = f"pfb-{run_id}-{name}-node"
        self.iperf = None
        self.created = False

    @property
    def pod_path(self):
        return f"/run/netns/{self.pod}"

    @property
    def node_path(self):
        return f"/run/netns/{self.node}"

    def create(self):
        ip("netns", "add", self.pod)
        self.created = True
        ip("netns", "add", self.node)
        n, p = self.node, self.pod
        ip("-n", n, "link", "add", HOST_IF, "address", HOST_MAC, "type", "veth",
           "peer", "name", POD_IF, "address", POD_MAC, "netns", p)
        for ns, dev, v4, v6 in ((n, HOST_IF, HOST_V4, HOST_V6), (p, POD_IF, POD_V4, POD_V6)):
            ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up")
        # Static neighbours: no ARP/ND exchange inside a measurement window.
        ip("-n", p, "neigh", "replace", HOST_V4, "lladdr", HOST_MAC, "dev", POD_IF, "nud", "permanent")
        ip("-n", p, "neigh", "replace", HOST_V6, "lladdr", HOST_MAC, "dev", POD_IF, "nud", "permanent")
        ip("-n", n, "neigh", "replace", POD_V4, "lladdr", POD_MAC, "dev", HOST_IF, "nud", "permanent")
        ip("-n", n, "neigh", "replace", POD_V6, "lladdr", POD_MAC, "dev", HOST_IF, "nud", "permanent")
        return self

    def start_iperf_server(self):
        if self.iperf:
            return
        self.iperf = subprocess.Popen(
            ["nsenter", f"--net={self.node_path}", "iperf3", "-s", "-p", str(IPERF_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        # Wait until it listens, so the first client does not race it.
        for _ in range(100):
            out = run(["ss", "-Hltn", f"sport = :{IPERF_PORT}"], netns=self.node, check=False).stdout
            if out.strip():
                return
            run(["sleep", "0.02"])
        raise RuntimeError(f"iperf3 server in {self.node} did not start")

    def destroy(self):
        if self.iperf:
            try:
                os.killpg(self.iperf.pid, signal.SIGTERM)
                self.iperf.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            self.iperf = None
        if self.created:
            # Deleting the netns destroys the veth and every tc/XDP/netfilter
            # hook on it; pinned tcx links are unpinned with the bpffs.
            ip("netns", "del", self.pod, check=False)
            ip("netns", "del", self.node, check=False)
            self.created = False
            log(f"removed topology {self.name}")

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.destroy()
