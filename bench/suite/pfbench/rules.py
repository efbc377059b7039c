"""One rule set, rendered for every filter under test ("the same rules").

"n rules" = n (cidr, port) pairs: allow TCP from the pod to a peer in cidr on
port; iptables/nftables get one rule (or set element) per pair. podfence gets
them as NetworkPolicy egress rules of PEERS_PER_RULE ipBlocks sharing one
port: 1 up to 10,000 pairs (every pair its own rule, like the testrun tool),
4 above, because podfence caps a policy at 200,000 items (rules + peers +
excepts + ports) and 100,000 one-peer rules would be 300,000 items.
Pairs 0..n-2 are distinct random CIDRs (v4: /24../32 inside 20.0.0.0/6,
v6: /48../128 inside 2001:db8::/32) that never contain the node address;
the LAST rule is the one the allowed flow matches (node address, ports
ALLOWED_PORT and the iperf3 port), so linear chains pay their worst case.
DENIED_PORT is in no rule: the denied flow goes to the same node address on
that port (peer matches, port does not).
"""
import ipaddress
import json
import random

from .topo import HOST_IF, HOST_V4, HOST_V6, IPERF_PORT

ALLOWED_PORT = 8080
DENIED_PORT = 9090
_RESERVED = {ALLOWED_PORT, DENIED_PORT, IPERF_PORT}


def peers_per_rule(n):
    return 1 if n <= 10000 else 4


def make_rules(n, family, seed=4):
    """n >= 1 pairs, grouped: list of ([cidr_str...], [ports]); the last
    group is the allowed flow's own rule."""
    rng = random.Random(f"{seed}-{family}-{n}")
    seen = set()
    pairs = []
    while len(pairs) < n - 1:
        if family == 4:
            plen = rng.randint(24, 32)
            addr = (20 << 24) | rng.getrandbits(26)
            net = ipaddress.ip_network((addr, plen), strict=False)
        else:
            plen = rng.randint(48, 128)
            addr = (0x20010db8 << 96) | rng.getrandbits(96)
            net = ipaddress.ip_network((addr, plen), strict=False)
        port = rng.randint(1024, 65000)
        if port in _RESERVED or (net, port) in seen:
            continue
        seen.add((net, port))
        pairs.append((str(net), port))
    g = peers_per_rule(n)
    rules = [([c for c, _ in pairs[i:i + g]], [pairs[i][1]]) for i in range(0, len(pairs), g)]
    host = f"{HOST_V4}/32" if family == 4 else f"{HOST_V6}/128"
    rules.append(([host], [ALLOWED_PORT, IPERF_PORT]))
    return rules


def count_pairs(rules):
    return sum(len(cidrs) * len(ports) for cidrs, ports in rules)


def podfence_policy(rules):
    """podfence.io/policy annotation: egress isolated with the rules; ingress
    isolated with none, so replies pass only through conntrack (full
    stateful policy, the production shape)."""
    egress = [{"to": [{"ipBlock": {"cidr": c}} for c in cidrs],
               "ports": [{"protocol": "TCP", "port": p} for p in ports]}
              for cidrs, ports in rules]
    return json.dumps({"policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": egress},
                      separators=(",", ":"))


def article_ports(rules):
    """The article filters on destination port only: its map holds the ports."""
    return "\n".join(sorted({str(p) for _, ports in rules for p in ports})) + "\n"


def iptables_restore(rules, family):
    """iptables-legacy-restore input: a per-pod chain, like kube policy
    implementations, stateless like the article's programs."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":PFB_POD - [0:0]",
             f"-A INPUT -i {HOST_IF} -j PFB_POD"]
    for cidrs, ports in rules:
        for cidr in cidrs:
            for p in ports:
                lines.append(f"-A PFB_POD -d {cidr} -p tcp -m tcp --dport {p} -j ACCEPT")
    if family == 6:
        # Neighbour discovery must pass, as it does through podfence.
        lines.insert(4, "-A PFB_POD -p ipv6-icmp -j ACCEPT")
    lines += ["-A PFB_POD -j DROP", "COMMIT", ""]
    return "\n".join(lines)


def nft_linear(rules, family):
    sel = "ip daddr" if family == 4 else "ip6 daddr"
    body = [f"\t\t{sel} {cidr} tcp dport {p} accept"
            for cidrs, ports in rules for cidr in cidrs for p in ports]
    return _nft_table(body, family)


def nft_set(rules, family):
    typ = "ipv4_addr" if family == 4 else "ipv6_addr"
    sel = "ip daddr" if family == 4 else "ip6 daddr"
    elems = ",\n\t\t\t".join(f"{cidr} . {p}" for cidrs, ports in rules for cidr in cidrs for p in ports)
    head = [f"\tset allow {{\n\t\ttype {typ} . inet_service; flags interval;\n"
            f"\t\telements = {{ {elems} }}\n\t}}"]
    return _nft_table([f"\t\t{sel} . tcp dport @allow accept"], family, head)


def _nft_table(rule_lines, family, head=()):
    nd = ["\t\tmeta l4proto ipv6-icmp accept"] if family == 6 else []
    return "\n".join(
        ["table inet pfb {", *head,
         "\tchain pod {", *nd, *rule_lines, "\t\tdrop", "\t}",
         "\tchain input {", "\t\ttype filter hook input priority 0; policy accept;",
         f'\t\tiifname "{HOST_IF}" jump pod', "\t}", "}", ""])
