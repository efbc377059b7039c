"""Invoking CNI plugins the way a runtime does: exec the binary with CNI_*
environment variables and the network config (with prevResult) on stdin,
from the node's network namespace."""
import json
import os

from .util import BenchError, timed_run

CNI_VERSION = "1.1.0"
POLICY_ANNOTATION = "podfence.io/policy"
ANNOTATIONS_KEY = "io.kubernetes.cri.pod-annotations"


def prev_result(host_if, host_mac, pod_if, pod_mac, pod_netns_path, addrs):
    """What a primary plugin (ptp/bridge) would have returned for this veth."""
    return {
        "cniVersion": CNI_VERSION,
        "interfaces": [
            {"name": host_if, "mac": host_mac},
            {"name": pod_if, "mac": pod_mac, "sandbox": pod_netns_path},
        ],
        "ips": [{"address": a, "interface": 1} for a in addrs],
    }


# Each way podfence can hook a pod: (label, netconf keys).
HOOKS = (
    ("tcx", {"mode": "tc", "tcBackend": "tcx"}),
    ("legacy", {"mode": "tc", "tcBackend": "legacy"}),
    ("xdp-generic", {"mode": "xdp", "xdpMode": "generic"}),
    ("xdp-native", {"mode": "xdp", "xdpMode": "native"}),
)


def podfence_conf(bpffs, log_file, mode="tc", xdp_mode="native", policy=None, prev=None,
                  default_policy="allow"):
    conf = {
        "cniVersion": CNI_VERSION,
        "name": "pfb-bench",
        "type": "podfence",
        "mode": mode,
        "defaultPolicy": default_policy,
        "bpffsRoot": bpffs,
        "logFile": log_file,
        "capabilities": {ANNOTATIONS_KEY: True},
    }
    if mode == "xdp":
        conf["xdpMode"] = xdp_mode
    if policy is not None:
        conf["runtimeConfig"] = {ANNOTATIONS_KEY: {POLICY_ANNOTATION: policy}}
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def invoke(binary, command, conf, *, container_id, ifname, netns_path, node_netns, timed=False):
    """Runs one CNI verb. Returns (parsed stdout or None, seconds)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns_path,
        "CNI_IFNAME": ifname,
        "CNI_PATH": f"{os.path.dirname(binary)}:/usr/lib/cni",
    }
    proc, secs = timed_run([binary], netns=node_netns, input=json.dumps(conf), env=env,
                           check=False)
    if proc.returncode != 0:
        raise BenchError(f"{os.path.basename(binary)} {command} {container_id}/{ifname} "
                         f"failed: {proc.stdout.strip()[:1000]} {proc.stderr.strip()[:1000]}")
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return out, secs
