"""Process, namespace and statistics helpers shared by the suite modules."""
import os
import statistics
import subprocess
import sys
import time

VERBOSE = False


class BenchError(Exception):
    """A setup step failed; the message names the command and its stderr."""


def log(msg):
    print(f"[pfbench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, *, netns=None, input=None, env=None, check=True, timeout=600):
    """Runs cmd (a list). netns: enter only that network namespace (never
    `ip netns exec`, which remounts /sys and hides bpffs)."""
    if netns:
        cmd = ["nsenter", f"--net=/run/netns/{netns}"] + list(cmd)
    if VERBOSE:
        log("+ " + " ".join(cmd)[:300])
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True,
                          env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)[:200]} failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[:2000]} {proc.stdout.strip()[:500]}")
    return proc


def timed_run(cmd, **kw):
    """run() plus its wall time in seconds (fork/exec included, as a runtime pays it)."""
    t0 = time.perf_counter()
    proc = run(cmd, **kw)
    return proc, time.perf_counter() - t0


def ip(*args, check=True):
    return run(["ip"] + [str(a) for a in args], check=check)


def ip_batch(netns, lines):
    """Many ip commands in one process, in one netns: creating 1,000 veth
    pairs one `ip` at a time would dominate the control-plane budget."""
    run(["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def summary(xs):
    """(min, median, max) of a list, NaNs for an empty one."""
    if not xs:
        return (float("nan"),) * 3
    return (min(xs), statistics.median(xs), max(xs))


def machine_info():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {
        "nproc": os.cpu_count(),
        "kernel": os.uname().release,
        "cpu": cpu,
        "loadavg": " ".join(load),
        # How long an RCU grace period takes, which ADD and DEL wait for.
        "rcu_expedited": _read_sys("/sys/kernel/rcu_expedited"),
        # Whether returns go through AMD's safe-RET thunk: it made every call
        # and return cost several ns, which moved the ratios of the data-plane
        # targets (bench/README.md, stop 27).
        "srso": _read_sys("/sys/devices/system/cpu/vulnerabilities/spec_rstack_overflow"),
    }


def _read_sys(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "unknown"
