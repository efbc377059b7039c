// Differential test: random policies and packets through pf_tc and pf_xdp
// (BPF_PROG_TEST_RUN) and through the reference evaluator; every verdict
// (and, for new flows, the admitting rule) must agree.
//   PODFENCE_DIFF_CASES  packets in total (default 100000; long mode 1000000)
//   PODFENCE_DIFF_SEED   reproduce a run (the seed is printed)
// A failure prints a shrunk reproducer: policy JSON (policy::to_json) and
// the packet, or the shortest failing packet sequence.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <variant>

#include "datapath/harness.hpp"
#include "policy/cidr.hpp"
#include "support/evaluator.hpp"
#include "policy/policy.hpp"

namespace pftest {
namespace {

namespace pol = podfence::policy;
using Rng = std::mt19937_64;

constexpr std::uint32_t kSlotTc = 21, kSlotXdp = 22;

std::uint64_t env_u64(const char* name, std::uint64_t def) {
    const char* v = std::getenv(name);
    return v && *v ? std::strtoull(v, nullptr, 0) : def;
}

std::uint64_t pick(Rng& r, std::uint64_t n) {
    return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(r);
}
bool chance(Rng& r, double p) {
    return std::bernoulli_distribution(p)(r);
}
template <class T> const T& choose(Rng& r, const std::vector<T>& v) {
    return v[pick(r, v.size())];
}

// ---------------------------------------------------------------- addresses

unsigned bits(std::uint8_t family) {
    return pol::family_bits(family);
}

Addr random_addr(Rng& r, std::uint8_t family) {
    Addr a{};
    // Small pools so that rules overlap and packets hit them.
    static const std::vector<std::string> v4 = {"10.0.0.0",    "10.1.0.0",   "10.1.2.0",
                                                "192.168.0.0", "172.16.0.0", "0.0.0.0"};
    static const std::vector<std::string> v6 = {"fd00::", "fd00:1::", "2001:db8::", "2001:db8:0:1::", "::"};
    a = ip(family == PF_FAMILY_V4 ? choose(r, v4) : choose(r, v6));
    unsigned n = family == PF_FAMILY_V4 ? 4 : 16;
    unsigned keep = static_cast<unsigned>(pick(r, n + 1)); // randomise bytes from `keep` on
    for (unsigned i = keep; i < n; ++i)
        a[i] = static_cast<std::uint8_t>(pick(r, 256));
    return a;
}

Addr set_host_bits(const Addr& a, unsigned plen, std::uint8_t family, Rng* r) {
    Addr o = a;
    for (unsigned i = plen; i < bits(family); ++i) {
        bool bit = r ? chance(*r, 0.5) : true;
        std::uint8_t m = static_cast<std::uint8_t>(0x80 >> (i % 8));
        o[i / 8] = bit ? (o[i / 8] | m) : (o[i / 8] & ~m);
    }
    return o;
}

// a + delta (delta = +-1) within the family's width; false on wrap.
bool step_addr(Addr& a, std::uint8_t family, int delta) {
    int n = family == PF_FAMILY_V4 ? 4 : 16;
    for (int i = n - 1; i >= 0; --i) {
        if (delta > 0) {
            if (++a[i] != 0) return true;
        } else {
            if (a[i]-- != 0) return true;
        }
    }
    return false;
}

pol::Cidr random_cidr(Rng& r, std::uint8_t family) {
    static const std::vector<unsigned> l4 = {0, 1, 8, 12, 16, 17, 20, 24, 28, 30, 31, 32};
    static const std::vector<unsigned> l6 = {0, 3, 16, 32, 48, 63, 64, 65, 96, 112, 120, 127, 128};
    pol::Cidr c;
    c.family = family;
    c.prefix_len = static_cast<std::uint8_t>(family == PF_FAMILY_V4 ? choose(r, l4) : choose(r, l6));
    c.addr = pol::mask_addr(random_addr(r, family), c.prefix_len);
    return c;
}

// A prefix strictly inside c (longer, within it); nullopt for host routes.
std::optional<pol::Cidr> random_inside(Rng& r, const pol::Cidr& c) {
    unsigned max = bits(c.family);
    if (c.prefix_len >= max) return std::nullopt;
    pol::Cidr e = c;
    unsigned span = max - c.prefix_len;
    unsigned add = 1 + static_cast<unsigned>(chance(r, 0.6) ? pick(r, std::min(span, 8u)) : pick(r, span));
    e.prefix_len = static_cast<std::uint8_t>(c.prefix_len + add);
    e.addr = pol::mask_addr(set_host_bits(c.addr, c.prefix_len, c.family, &r), e.prefix_len);
    return e;
}

// ----------------------------------------------------------------- policies

pol::PortSpec random_port(Rng& r) {
    static const std::vector<std::uint16_t> ports = {1,    22,   53,   80,    443,   1000,
                                                     5000, 8000, 8080, 32768, 65534, 65535};
    pol::PortSpec p;
    p.protocol = choose(r, std::vector<pol::Protocol>{pol::Protocol::TCP, pol::Protocol::TCP,
                                                      pol::Protocol::UDP, pol::Protocol::SCTP});
    p.has_port = chance(r, 0.8);
    if (p.has_port) {
        p.port = chance(r, 0.7) ? choose(r, ports) : static_cast<std::uint16_t>(1 + pick(r, 65535));
        std::uint32_t end = p.port;
        if (chance(r, 0.5)) end += static_cast<std::uint32_t>(chance(r, 0.7) ? pick(r, 20) : pick(r, 5000));
        p.end_port = static_cast<std::uint16_t>(std::min<std::uint32_t>(end, 65535));
    }
    return p;
}

pol::Rule random_rule(Rng& r) {
    pol::Rule rule;
    rule.any_peer = chance(r, 0.2);
    if (!rule.any_peer) {
        for (std::uint64_t n = 1 + pick(r, 3); n; --n) {
            pol::IpBlock b;
            b.cidr = random_cidr(r, chance(r, 0.65) ? PF_FAMILY_V4 : PF_FAMILY_V6);
            for (std::uint64_t e = chance(r, 0.4) ? 1 + pick(r, 2) : 0; e; --e)
                if (auto x = random_inside(r, b.cidr)) b.except.push_back(*x);
            rule.peers.push_back(b);
        }
    }
    rule.any_port = chance(r, 0.3);
    if (!rule.any_port)
        for (std::uint64_t n = 1 + pick(r, 3); n; --n)
            rule.ports.push_back(random_port(r));
    return rule;
}

pol::Policy random_policy(Rng& r) {
    pol::Policy p;
    p.isolate_ingress = chance(r, 0.8);
    p.isolate_egress = chance(r, 0.6);
    for (auto* list : {&p.ingress, &p.egress})
        for (std::uint64_t n = chance(r, 0.1) ? 0 : 1 + pick(r, 4); n; --n)
            list->push_back(random_rule(r));
    return p;
}

// ------------------------------------------------------------------ packets

// A packet in both forms: the evaluator's view and the frame on the wire.
struct Pkt {
    pol::Packet pk;
    Frame f;
};

bool ported(std::uint8_t proto) {
    return proto == kTcp || proto == kUdp || proto == kSctp;
}

bool icmp_error_type(std::uint8_t family, std::uint8_t type) {
    return family == 4 ? type == 3 || type == 11 || type == 12 : type >= 1 && type <= 4;
}

// What an ICMP error of `family` lets the datapath read of the packet it
// quotes: nothing from a later fragment or another family.
std::optional<pol::Packet::Quoted> quoted_of(std::uint8_t family, const Frame& q) {
    if (q.family != family || q.non_first_fragment || q.truncate_to) return std::nullopt;
    pol::Packet::Quoted out;
    out.src = q.src;
    out.dst = q.dst;
    out.proto = q.proto;
    const bool echo = family == 4 ? q.proto == kIcmp && (q.icmp_type == 8 || q.icmp_type == 0)
                                  : q.proto == kIcmp6 && (q.icmp_type == 128 || q.icmp_type == 129);
    if (ported(q.proto)) {
        out.sport = q.sport;
        out.dport = q.dport;
    } else if (echo) {
        out.sport = out.dport = q.icmp_id;
    }
    return out;
}

// Fills pk from f (the datapath's parsing, written the evaluator's way).
Pkt make_pkt(std::uint8_t dir, const Frame& f, std::uint8_t tcp_flags) {
    const bool fin_rst = (tcp_flags & (kTcpFin | kTcpRst)) != 0;
    Pkt p{{}, f};
    p.pk.dir = dir == PF_DIR_INGRESS ? pol::Direction::Ingress : pol::Direction::Egress;
    p.pk.family = f.family;
    p.pk.src = f.src;
    p.pk.dst = f.dst;
    p.pk.proto = f.proto;
    p.pk.non_first_fragment = f.non_first_fragment;
    p.pk.first_fragment = f.first_fragment;
    p.pk.frag_id = f.family == 4 ? (f.frag_id & 0xffff) : f.frag_id;
    bool icmp_here = (f.family == 4 && f.proto == kIcmp) || (f.family == 6 && f.proto == kIcmp6);
    if (!f.non_first_fragment && ported(f.proto)) {
        p.pk.sport = f.sport;
        p.pk.dport = f.dport;
        p.pk.tcp_fin_or_rst = f.proto == kTcp && fin_rst;
    } else if (!f.non_first_fragment && icmp_here) {
        p.pk.icmp_type = f.icmp_type;
        bool echo = f.family == 4 ? (f.icmp_type == 8 || f.icmp_type == 0)
                                  : (f.icmp_type == 128 || f.icmp_type == 129);
        p.pk.icmp_echo = echo;
        if (echo) p.pk.sport = p.pk.dport = f.icmp_id;
        if (f.quoted && icmp_error_type(f.family, f.icmp_type)) p.pk.quoted = quoted_of(f.family, *f.quoted);
    }
    p.f.tcp_flags = tcp_flags;
    return p;
}

std::uint8_t random_flags(Rng& r) {
    std::uint64_t k = pick(r, 100);
    return k < 3 ? kTcpFin | kTcpAck : k < 5 ? kTcpRst : k < 50 ? kTcpSyn : kTcpAck;
}

// Peer addresses near the policy's edges.
Addr peer_for(Rng& r, const pol::Policy& policy, std::uint8_t family) {
    std::vector<const pol::Cidr*> prefixes;
    for (const auto* list : {&policy.ingress, &policy.egress})
        for (const auto& rule : *list)
            for (const auto& b : rule.peers) {
                if (b.cidr.family == family) prefixes.push_back(&b.cidr);
                for (const auto& e : b.except)
                    if (e.family == family) prefixes.push_back(&e);
            }
    if (prefixes.empty() || chance(r, 0.2)) return random_addr(r, family);
    const pol::Cidr& c = *choose(r, prefixes);
    Addr a;
    switch (pick(r, 5)) {
    case 0: a = c.addr; break;
    case 1: a = set_host_bits(c.addr, c.prefix_len, family, nullptr); break;
    case 2:
        a = c.addr;
        step_addr(a, family, -1);
        break;
    case 3:
        a = set_host_bits(c.addr, c.prefix_len, family, nullptr);
        step_addr(a, family, +1);
        break;
    default: a = set_host_bits(c.addr, c.prefix_len, family, &r); break;
    }
    return a;
}

std::uint16_t dport_for(Rng& r, const pol::Policy& policy) {
    std::vector<std::uint16_t> edges = {0, 1, 65535};
    for (const auto* list : {&policy.ingress, &policy.egress})
        for (const auto& rule : *list)
            for (const auto& ps : rule.ports)
                if (ps.has_port) {
                    edges.push_back(static_cast<std::uint16_t>(ps.port - 1));
                    edges.push_back(ps.port);
                    edges.push_back(ps.end_port);
                    edges.push_back(static_cast<std::uint16_t>(ps.end_port + 1));
                    edges.push_back(static_cast<std::uint16_t>(ps.port + (ps.end_port - ps.port) / 2));
                }
    return chance(r, 0.85) ? choose(r, edges) : static_cast<std::uint16_t>(pick(r, 65536));
}

// Sources the source check treats specially: unspecified, link-local
// fe80::/64, just outside it, another pod's.
Addr odd_source(Rng& r, std::uint8_t family) {
    if (family == PF_FAMILY_V4) return ip(choose(r, std::vector<std::string>{"0.0.0.0", "10.0.0.11"}));
    return ip(choose(r, std::vector<std::string>{"::", "fe80::10", "fe80::a8c1:abff:fe00:10",
                                                 "fe80:0:0:1::10", "fd00::11"}));
}

Pkt random_pkt(Rng& r, const pol::Policy& policy) {
    std::uint8_t dir = chance(r, 0.5) ? PF_DIR_INGRESS : PF_DIR_EGRESS;
    std::uint8_t family = chance(r, 0.6) ? PF_FAMILY_V4 : PF_FAMILY_V6;
    Frame f;
    f.family = family;
    Addr peer = peer_for(r, policy, family);
    Addr pod = family == PF_FAMILY_V4 ? ip("10.0.0.10") : ip("fd00::10");
    if (chance(r, 0.1))
        pod = random_addr(r, family);
    else if (chance(r, 0.05))
        pod = odd_source(r, family);
    f.src = dir == PF_DIR_INGRESS ? peer : pod;
    f.dst = dir == PF_DIR_INGRESS ? pod : peer;
    std::uint64_t k = pick(r, 100);
    if (k < 40)
        f.proto = kTcp;
    else if (k < 62)
        f.proto = kUdp;
    else if (k < 72)
        f.proto = kSctp;
    else if (k < 90)
        f.proto = family == PF_FAMILY_V4 ? kIcmp : kIcmp6;
    else
        f.proto = choose(r, std::vector<std::uint8_t>{kGre, 50, 51, 59, 89, 136, 255, kIcmp, kIcmp6});
    f.sport = chance(r, 0.5) ? static_cast<std::uint16_t>(pick(r, 65536)) : dport_for(r, policy);
    f.dport = dport_for(r, policy);
    if (family == PF_FAMILY_V4)
        f.icmp_type = chance(r, 0.8) ? choose(r, std::vector<std::uint8_t>{8, 0})
                                     : static_cast<std::uint8_t>(pick(r, 20));
    else
        f.icmp_type = chance(r, 0.7)
                          ? choose(r, std::vector<std::uint8_t>{128, 129})
                          : choose(r, std::vector<std::uint8_t>{1, 2, 3, 133, 134, 135, 136, 137, 138, 143});
    f.icmp_id = static_cast<std::uint16_t>(pick(r, 4));
    f.non_first_fragment = chance(r, 0.05);
    f.first_fragment = !f.non_first_fragment && chance(r, 0.03);
    f.frag_id = chance(r, 0.5) ? 0x1234 : 7;
    if (family == PF_FAMILY_V6 && chance(r, 0.05)) f.v6_ext = {0, 60};
    if (family == PF_FAMILY_V4 && chance(r, 0.05))
        f.ipv4_option_words = static_cast<std::uint8_t>(1 + pick(r, 10));
    if ((f.proto == kIcmp || f.proto == kIcmp6) && chance(r, 0.5)) {
        // An error quoting some packet (tracked or not, maybe of the other family).
        f.icmp_type = family == PF_FAMILY_V4 ? choose(r, std::vector<std::uint8_t>{3, 11, 12})
                                             : static_cast<std::uint8_t>(1 + pick(r, 4));
        Pkt q = random_pkt(r, policy);
        q.f.quoted.reset();
        f.quoted = std::make_shared<const Frame>(q.f);
    }
    return make_pkt(dir, f, random_flags(r));
}

// An ICMP error about `q` (a packet as it travelled in direction qdir),
// sent the other way: from q's receiver or a router to q's sender, or to or
// from another address than the pod's.
Pkt error_about(Rng& r, const pol::Policy& policy, std::uint8_t qdir, const Frame& q) {
    Frame e;
    e.family = q.family;
    e.proto = q.family == PF_FAMILY_V4 ? kIcmp : kIcmp6;
    e.icmp_type = q.family == PF_FAMILY_V4 ? choose(r, std::vector<std::uint8_t>{3, 11, 12})
                                           : static_cast<std::uint8_t>(1 + pick(r, 4));
    e.icmp_code = e.icmp_type == 3 ? 4 : 0;
    Frame inner = q;
    inner.quoted.reset();
    e.quoted = std::make_shared<const Frame>(inner);
    const std::uint8_t edir = qdir == PF_DIR_INGRESS ? PF_DIR_EGRESS : PF_DIR_INGRESS;
    if (edir == PF_DIR_INGRESS) { // to the pod, which sent q: from q's receiver or a router
        e.src = chance(r, 0.7) ? q.dst : peer_for(r, policy, q.family);
        e.dst = chance(r, 0.9) ? q.src : random_addr(r, q.family);
    } else { // from the pod, which received q
        e.src = chance(r, 0.9) ? q.dst : random_addr(r, q.family);
        e.dst = chance(r, 0.7) ? q.src : peer_for(r, policy, q.family);
    }
    return make_pkt(edir, e, kTcpAck);
}

std::string describe(const Pkt& p) {
    return std::string(p.pk.dir == pol::Direction::Ingress ? "ingress " : "egress ") + p.f.describe();
}

// ------------------------------------------------------------- the datapath

struct Dut {
    Harness& h;
    Prog prog;
    std::uint32_t slot;

    // Verdict of the program for p, as a NEW flow when `fresh`.
    bool run(const Pkt& p, bool fresh) {
        std::uint8_t dir = p.pk.dir == pol::Direction::Ingress ? PF_DIR_INGRESS : PF_DIR_EGRESS;
        if (fresh) {
            // Also what a fragment or an error would find from earlier packets.
            h.conntrack_delete(ct_key_for(slot, dir, p.f));
            h.frag_delete(frag_key_for(slot, dir, p.f));
            if (p.f.quoted) h.conntrack_delete(ct_key_for(slot, dir ^ 1, *p.f.quoted));
        }
        h.set_scratch(slot, dir);
        int rc = h.run(prog, build(p.f)).retval;
        if (rc != Harness::allow_code(prog) && rc != Harness::deny_code(prog))
            throw std::runtime_error("unexpected return code " + std::to_string(rc));
        return rc == Harness::allow_code(prog);
    }
};

std::uint32_t g_rev = 1000;

// The source check of each slot (h.set_sources), for the evaluators.
std::map<std::uint32_t, pol::PodSources> g_sources;

// Most pods check their sources: the addresses random_pkt gives the pod,
// sometimes one more, sometimes none.
pol::PodSources random_sources(Rng& r) {
    pol::PodSources s;
    s.check = chance(r, 0.7);
    if (chance(r, 0.9)) s.addrs = {{PF_FAMILY_V4, ip("10.0.0.10")}, {PF_FAMILY_V6, ip("fd00::10")}};
    if (chance(r, 0.3)) {
        const std::uint8_t family = chance(r, 0.5) ? PF_FAMILY_V4 : PF_FAMILY_V6;
        s.addrs.push_back({family, random_addr(r, family)});
    }
    return s;
}

void set_sources(Harness& h, std::uint32_t slot, pol::PodSources s) {
    h.set_sources(slot, s);
    g_sources[slot] = std::move(s);
}

// --------------------------------------------------------------- stateless

// Mismatch text, empty when the program agrees with evaluate().
std::string check_fresh(Dut& d, const pol::Policy& policy, const Pkt& p, bool check_rule) {
    pol::Decision want = pol::evaluate(policy, p.pk, g_sources[d.slot]);
    std::uint8_t dir = p.pk.dir == pol::Direction::Ingress ? PF_DIR_INGRESS : PF_DIR_EGRESS;
    std::uint64_t hits_before = check_rule ? d.h.rule_hits(d.slot, dir, want.rule) : 0;
    bool got = d.run(p, true);
    if (got != want.allowed)
        return std::string("expected ") + (want.allowed ? "allow" : "deny") + ", got " +
               (got ? "allow" : "deny");
    if (check_rule && want.allowed && want.policy_decision &&
        d.h.rule_hits(d.slot, dir, want.rule) != hits_before + 1)
        return "allowed, but rule " + std::to_string(want.rule) + " did not count the new flow";
    return {};
}

// Smaller policies derived from p (one piece removed each).
std::vector<pol::Policy> shrink_candidates(const pol::Policy& p) {
    std::vector<pol::Policy> out;
    for (int dir = 0; dir < 2; ++dir) {
        const auto& rules = dir ? p.egress : p.ingress;
        for (std::size_t i = 0; i < rules.size(); ++i) {
            pol::Policy q = p;
            auto& qr = dir ? q.egress : q.ingress;
            qr.erase(qr.begin() + static_cast<long>(i));
            out.push_back(q);
            const pol::Rule& rule = rules[i];
            for (std::size_t j = 0; j < rule.peers.size() && rule.peers.size() > 1; ++j) {
                pol::Policy s = p;
                auto& sr = (dir ? s.egress : s.ingress)[i];
                sr.peers.erase(sr.peers.begin() + static_cast<long>(j));
                out.push_back(s);
            }
            for (std::size_t j = 0; j < rule.peers.size(); ++j)
                for (std::size_t e = 0; e < rule.peers[j].except.size(); ++e) {
                    pol::Policy s = p;
                    auto& ex = (dir ? s.egress : s.ingress)[i].peers[j].except;
                    ex.erase(ex.begin() + static_cast<long>(e));
                    out.push_back(s);
                }
            for (std::size_t j = 0; j < rule.ports.size() && rule.ports.size() > 1; ++j) {
                pol::Policy s = p;
                auto& sp = (dir ? s.egress : s.ingress)[i].ports;
                sp.erase(sp.begin() + static_cast<long>(j));
                out.push_back(s);
            }
        }
    }
    return out;
}

// Greedy: keep any one-piece removal that still fails.
pol::Policy shrink_policy(const pol::Policy& start, const std::function<bool(const pol::Policy&)>& fails) {
    pol::Policy cur = start;
    for (bool progress = true; progress;) {
        progress = false;
        for (const auto& cand : shrink_candidates(cur)) {
            if (fails(cand)) {
                cur = cand;
                progress = true;
                break;
            }
        }
    }
    return cur;
}

std::string fresh_reproducer(Harness& h, Dut& d, const pol::Policy& policy, const Pkt& p) {
    auto fails = [&](const pol::Policy& cand) {
        h.install(d.slot, cand, ++g_rev);
        return !check_fresh(d, cand, p, true).empty();
    };
    pol::Policy small = shrink_policy(policy, fails);
    h.install(d.slot, small, ++g_rev);
    std::ostringstream o;
    o << prog_name(d.prog) << " disagrees with evaluate() on a NEW flow: " << check_fresh(d, small, p, true)
      << "\n  policy: " << pol::to_json(small) << "\n  packet: " << describe(p)
      << "\n  (unshrunk policy: " << pol::to_json(policy) << ")";
    return o.str();
}

// ---------------------------------------------------------------- stateful

struct Replace {
    pol::Policy policy;
};
using Event = std::variant<Pkt, Replace>;

struct Sequence {
    pol::Policy initial;
    std::vector<Event> events;
};

// A pool of flows, each packet forward or reply; the policy is replaced
// (revision bump) between segments of `seg_len` packets: the same policy,
// one piece less, ingress isolation flipped, or a new one.
Sequence random_sequence(Rng& r, std::size_t segments, std::size_t seg_len) {
    Sequence s;
    s.initial = random_policy(r);
    std::vector<Pkt> flows;
    for (int i = 0; i < 6; ++i)
        flows.push_back(random_pkt(r, s.initial));
    pol::Policy current = s.initial;
    for (std::size_t seg = 0; seg < segments; ++seg) {
        if (seg > 0) {
            pol::Policy next = current;
            std::uint64_t k = pick(r, 4);
            if (k == 1) {
                auto cands = shrink_candidates(current);
                if (!cands.empty()) next = choose(r, cands);
            } else if (k == 2) {
                next.isolate_ingress = !next.isolate_ingress;
            } else if (k == 3) {
                next = random_policy(r);
            }
            s.events.push_back(Replace{next});
            current = next;
        }
        for (std::size_t i = 0; i < seg_len; ++i) {
            if (chance(r, 0.1)) flows[pick(r, flows.size())] = random_pkt(r, current);
            const Pkt& f = choose(r, flows);
            std::uint8_t fdir = f.pk.dir == pol::Direction::Ingress ? PF_DIR_INGRESS : PF_DIR_EGRESS;
            std::uint8_t flags = random_flags(r);
            std::uint8_t rdir = fdir == PF_DIR_INGRESS ? PF_DIR_EGRESS : PF_DIR_INGRESS;
            const bool fwd = chance(r, 0.5);
            Frame pf = fwd ? f.f : reply(f.f);
            const std::uint64_t k = pick(r, 100);
            if (k < 12) {
                // An ICMP error about this packet of the flow.
                s.events.push_back(error_about(r, current, fwd ? fdir : rdir, pf));
                continue;
            }
            if (k < 34) // first or later fragment of one of two datagrams, in any order
                pf = fragment(pf, k < 22, chance(r, 0.5) ? 1 : 2);
            s.events.push_back(make_pkt(fwd ? fdir : rdir, pf, flags));
        }
    }
    return s;
}

// Replays the sequence; index of the first packet whose verdict differs
// (and the mismatch text), or -1.
long replay(Harness& h, Dut& d, const Sequence& s, std::string* why = nullptr) {
    h.conntrack_clear();
    h.frag_clear();
    h.install(d.slot, s.initial, ++g_rev);
    pol::StatefulEvaluator ev(s.initial, g_rev);
    ev.set_sources(g_sources[d.slot]);
    for (std::size_t i = 0; i < s.events.size(); ++i) {
        if (const auto* rep = std::get_if<Replace>(&s.events[i])) {
            h.install(d.slot, rep->policy, ++g_rev);
            ev.replace(rep->policy, g_rev);
            continue;
        }
        const Pkt& p = std::get<Pkt>(s.events[i]);
        bool want = ev.process(p.pk).allowed;
        bool got = d.run(p, false);
        if (want != got) {
            if (why)
                *why = std::string("expected ") + (want ? "allow" : "deny") + ", got " +
                       (got ? "allow" : "deny");
            return static_cast<long>(i);
        }
    }
    return -1;
}

std::string sequence_reproducer(Harness& h, Dut& d, Sequence s, long at) {
    s.events.resize(static_cast<std::size_t>(at) + 1);
    // Drop events (packets and replacements) while the last packet still fails.
    for (bool progress = true; progress;) {
        progress = false;
        for (std::size_t i = 0; i + 1 < s.events.size(); ++i) {
            Sequence t = s;
            t.events.erase(t.events.begin() + static_cast<long>(i));
            long f = replay(h, d, t);
            if (f >= 0) {
                t.events.resize(static_cast<std::size_t>(f) + 1);
                s = t;
                progress = true;
                break;
            }
        }
    }
    std::string why;
    replay(h, d, s, &why);
    std::ostringstream o;
    o << prog_name(d.prog) << " disagrees with StatefulEvaluator at the last packet: " << why
      << "\n  initial policy (rev 1): " << pol::to_json(s.initial);
    int rev = 1;
    for (const Event& e : s.events) {
        if (const auto* rep = std::get_if<Replace>(&e))
            o << "\n  replace (rev " << ++rev << "): " << pol::to_json(rep->policy);
        else
            o << "\n  packet: " << describe(std::get<Pkt>(e));
    }
    return o.str();
}

} // namespace

TEST_CASE("datapath: differential against the reference evaluator") {
    const std::uint64_t total = env_u64("PODFENCE_DIFF_CASES", 100000);
    const std::uint64_t seed =
        env_u64("PODFENCE_DIFF_SEED", std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32));
    MESSAGE("PODFENCE_DIFF_SEED=" << seed << " PODFENCE_DIFF_CASES=" << total);
    Rng rng(seed);
    Harness h;
    const auto t0 = std::chrono::steady_clock::now();
    std::uint64_t failures = 0;
    constexpr std::uint64_t kMaxFailures = 3;

    // Part 1, 60% of the packets: new flows against evaluate(). A batch is
    // kSlots random policies installed at once, 100 packets each; tc and xdp
    // share a slot (the flow's conntrack entry is deleted before each run).
    constexpr std::uint32_t kSlots = 8, kFirstSlot = 100;
    const std::uint64_t fresh_total = total * 6 / 10;
    std::uint64_t done = 0, allowed = 0, spoofed = 0;
    while (done < fresh_total && failures < kMaxFailures) {
        std::vector<pol::Policy> pols;
        std::vector<Harness::Install> ins;
        for (std::uint32_t k = 0; k < kSlots; ++k)
            pols.push_back(random_policy(rng));
        for (std::uint32_t k = 0; k < kSlots; ++k)
            set_sources(h, kFirstSlot + k, random_sources(rng));
        for (std::uint32_t k = 0; k < kSlots; ++k)
            ins.push_back({kFirstSlot + k, &pols[k], ++g_rev});
        h.install_all(ins);
        for (std::uint32_t k = 0; k < kSlots && failures < kMaxFailures; ++k) {
            Dut duts[] = {{h, Prog::Tc, kFirstSlot + k}, {h, Prog::Xdp, kFirstSlot + k}};
            for (int i = 0; i < 100 && done < fresh_total && failures < kMaxFailures; ++i, ++done) {
                Pkt p = random_pkt(rng, pols[k]);
                for (Dut& d : duts) {
                    if (check_fresh(d, pols[k], p, (done & 3) == 0).empty()) continue;
                    FAIL_CHECK(fresh_reproducer(h, d, pols[k], p));
                    ++failures;
                    h.install(d.slot, pols[k], ++g_rev);
                }
                const pol::Decision want = pol::evaluate(pols[k], p.pk, g_sources[kFirstSlot + k]);
                allowed += want.allowed;
                spoofed += want.spoofed;
            }
        }
    }

    // Part 2, 40%: packet sequences (replies, repeats, policy replacements)
    // against StatefulEvaluator, kSeqs sequences in lockstep, each with its
    // own tc slot and xdp slot so their conntrack entries stay apart, run
    // through the per-attachment programs (Prog::Fast*) as a pod's hooks run.
    constexpr std::uint32_t kSeqs = 16, kSeqSlot = 200;
    constexpr std::size_t kSegments = 3, kSegLen = 20;
    const std::uint64_t seq_total = total - fresh_total;
    std::uint64_t seq_done = 0, sequences = 0;
    // Later fragments and ICMP errors quoting a packet, of sequence 0: [denied, allowed].
    std::uint64_t frag_verdicts[2] = {}, error_verdicts[2] = {};
    while (seq_done < seq_total && failures < kMaxFailures) {
        std::vector<Sequence> seqs;
        for (std::uint32_t k = 0; k < kSeqs; ++k)
            seqs.push_back(random_sequence(rng, kSegments, kSegLen));
        std::vector<Dut> duts;
        std::vector<pol::StatefulEvaluator> evs;
        std::vector<long> failed_at(2 * kSeqs, -1);
        h.conntrack_clear();
        h.frag_clear();
        std::vector<Harness::Install> ins;
        const std::uint32_t rev0 = ++g_rev;
        for (std::uint32_t k = 0; k < 2 * kSeqs; ++k) {
            duts.push_back({h, k % 2 ? Prog::FastXdp : Prog::FastTc, kSeqSlot + k});
            evs.emplace_back(seqs[k / 2].initial, rev0);
            set_sources(h, kSeqSlot + k, random_sources(rng));
            evs.back().set_sources(g_sources[kSeqSlot + k]);
            ins.push_back({kSeqSlot + k, &seqs[k / 2].initial, rev0});
        }
        h.install_all(ins);
        const std::size_t steps = seqs[0].events.size();
        for (std::size_t i = 0; i < steps; ++i) {
            if (std::holds_alternative<Replace>(seqs[0].events[i])) { // same positions in every sequence
                ins.clear();
                const std::uint32_t rev = ++g_rev;
                for (std::uint32_t k = 0; k < 2 * kSeqs; ++k) {
                    const pol::Policy& next = std::get<Replace>(seqs[k / 2].events[i]).policy;
                    ins.push_back({kSeqSlot + k, &next, rev});
                    evs[k].replace(next, rev);
                }
                h.install_all(ins);
                continue;
            }
            for (std::uint32_t k = 0; k < 2 * kSeqs; ++k) {
                if (failed_at[k] >= 0) continue;
                const Pkt& p = std::get<Pkt>(seqs[k / 2].events[i]);
                const bool want = evs[k].process(p.pk).allowed;
                if (k == 0 && (p.pk.non_first_fragment || p.pk.quoted))
                    ++(p.pk.non_first_fragment ? frag_verdicts : error_verdicts)[want];
                if (want != duts[k].run(p, false)) failed_at[k] = static_cast<long>(i);
            }
            seq_done += kSeqs;
        }
        sequences += kSeqs;
        for (std::uint32_t k = 0; k < 2 * kSeqs && failures < kMaxFailures; ++k) {
            if (failed_at[k] < 0) continue;
            FAIL_CHECK(sequence_reproducer(h, duts[k], seqs[k / 2], failed_at[k]));
            ++failures;
        }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("differential: "
            << done << " new-flow packets (" << allowed << " allowed) and " << seq_done << " packets in "
            << sequences
            << " stateful sequences, each through tc and xdp (new flows: the engines; sequences: the "
               "per-attachment programs), in "
            << secs << " s; of these " << frag_verdicts[1] << "/" << frag_verdicts[0]
            << " later fragments and " << error_verdicts[1] << "/" << error_verdicts[0]
            << " ICMP errors with a quote allowed/denied (sequence 0 of each batch)");
    MESSAGE("source check: " << spoofed << " of the new-flow packets had a forged source");
    CHECK(spoofed > 0);
    CHECK(failures == 0);
    if (seq_total >= 10000) { // both outcomes of both rules must have been exercised
        CHECK(frag_verdicts[0] > 0);
        CHECK(frag_verdicts[1] > 0);
        CHECK(error_verdicts[0] > 0);
        CHECK(error_verdicts[1] > 0);
    }
}

} // namespace pftest
