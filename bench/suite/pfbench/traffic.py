"""Traffic generators and what their numbers mean.

pps (allowed flow): packets that reached the receiver's TCP layer (Tcp
  InSegs delta in the node netns, i.e. after every filter) per second of the
  sender's send window. They are an established flow's packets: plain ACKs,
  which the receiver drops unanswered because their TCP checksum is wrong on
  purpose (pfb_blast --ack; no filter here reads TCP checksums). Until
  2026-12-03 they were RSTs, which a stateful filter may not treat like the
  rest of a flow (podfence sends FIN and RST through conntrack, past its
  flow cache). The sender (pfb_blast, pinned to one CPU) saturates
  that CPU: the veth delivers synchronously in softirq on the sending CPU, so
  the whole per-packet path (syscall, veth, filter, IP, TCP lookup, discard)
  runs there and pps ~ 1 / (CPU time per packet).
pps (denied flow): RSTs to a port no rule allows, which the sender pushed
  through the same path per second while the filter dropped them (InSegs
  must stay ~0). For "none" the same packets are discarded by the stack (no
  socket): the baseline is the stack's own discard.
cpu_ns_per_pkt: CPU time of the sender process plus its CPU's ksoftirqd
  (schedstat, ns) divided by the packets counted above. Softirq work done
  in the sender's context is charged to it, so this is the per-packet cost of
  the whole path, and other processes on a shared machine do not count.
  machine_ns_per_pkt: the same from machine-wide /proc/stat busy time (only
  meaningful on a quiet machine).
prog_ns_per_pkt (bpf_stats=True): run time per run of the BPF program that
  ran most in the window (the filter's: once per packet), from the kernel's
  run-time statistics (on only for that window: they cost two clock reads
  per program run, so such a window's pps is not comparable with others').
tcp: one iperf3 stream pod -> node, receiver goodput in Gbit/s, plus CPU ns
  per KiB delivered from iperf3's own client+server CPU accounting (the
  article's "CPU for the same throughput"), and machine-wide for reference.
"""
import json
import os
import time

from .rules import ALLOWED_PORT, DENIED_PORT
from .topo import HOST_MAC, HOST_V4, HOST_V6, IPERF_PORT, POD_IF, POD_MAC, POD_V4, POD_V6
from .util import run

SENDER_CPU = (os.cpu_count() or 1) - 1


def blast(ctx, topo, *, allowed, family, duration, bpf_stats=False, rst=False):
    """One pfb_blast window. Returns a dict of raw counts and derived rates.
    rst: the allowed flow's packets are RSTs, like the denied flow's."""
    src, dst = (POD_V4, HOST_V4) if family == 4 else (POD_V6, HOST_V6)
    out = run([ctx.tool("pfb_blast"), "--ifname", POD_IF, "--src-mac", POD_MAC,
               "--dst-mac", HOST_MAC, "--src", src, "--dst", dst,
               "--dport", str(ALLOWED_PORT if allowed else DENIED_PORT),
               "--duration", str(duration), "--cpu", str(SENDER_CPU),
               "--rx-netns", topo.node_path]
              + (["--ack"] if allowed and not rst else []) + (["--bpf-stats"] if bpf_stats else []),
              netns=topo.pod).stdout
    fields = out.strip().split(",")
    sent, received, elapsed_ns, cpu_total_ns, cpu_task_ns, errors, replies = map(int, fields[:7])
    secs = elapsed_ns / 1e9
    counted = received if allowed else sent
    nan = float("nan")
    m = {
        "sent": sent, "received": received, "secs": secs, "send_errors": errors, "replies": replies,
        "value": counted / secs,
        "cpu_ns_per_pkt": cpu_task_ns / counted if counted else nan,
        "machine_ns_per_pkt": cpu_total_ns / counted if counted else nan,
    }
    if bpf_stats:
        # The filter's program runs once per packet; a stray one elsewhere
        # (another topology's neighbour discovery) a few times.
        progs = [(int(r), int(ns), name) for name, r, ns in
                 (e.rsplit(":", 2) for e in fields[7].split("+") if e != "-")]
        runs, run_ns, name = max(progs, default=(0, 0, "-"))
        m.update({"prog_name": name, "prog_runs": runs, "prog_run_ns": run_ns,
                  "prog_others": len(progs) - 1 if progs else 0,
                  "prog_ns_per_pkt": run_ns / runs if runs else nan})
    return m


def tcp(ctx, topo, *, duration):
    """One iperf3 stream from the pod to the node."""
    topo.start_iperf_server()
    busy0 = _busy_ns()
    out = run(["iperf3", "-c", HOST_V4, "-p", str(IPERF_PORT), "-t", str(int(duration)), "-J"],
              netns=topo.pod, timeout=duration + 30).stdout
    busy1 = _busy_ns()
    res = json.loads(out)
    end = res["end"]
    bps = end["sum_received"]["bits_per_second"]
    nbytes = end["sum_received"]["bytes"]
    secs = end["sum_received"]["seconds"]
    cpu = end.get("cpu_utilization_percent", {})
    proc_ns = (cpu.get("host_total", 0) + cpu.get("remote_total", 0)) / 100 * secs * 1e9
    kib = nbytes / 1024
    nan = float("nan")
    return {
        "value": bps / 1e9, "bytes": nbytes, "secs": secs,
        "cpu_ns_per_kib": proc_ns / kib if kib and proc_ns else nan,
        "machine_ns_per_kib": (busy1 - busy0) / kib if kib else nan,
    }


def _busy_ns():
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    # user nice system [idle iowait] irq softirq
    return (v[0] + v[1] + v[2] + v[5] + v[6]) * 1_000_000_000 // hz


def settle():
    """A short pause between windows so one run's softirq backlog does not
    spill into the next one's counters."""
    time.sleep(0.05)
