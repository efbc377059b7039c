// Policy -> entries of the pod's policy map (layout: bpf/podfence_abi.h).
//
// Per direction and family the peer address space is cut into regions in
// which the set R of rules whose peers match is constant. Every cidr and
// except (and 0/0 for any-peer rules) is a prefix; the longest of them that
// contains an address decides which cidrs/excepts contain it, so one ADDR
// entry per such prefix with the port set of its R is exact. Prefixes are
// visited in DFS order (sorted by address, then length) with a stack, so R
// is maintained incrementally: O(n log n) plus the size of the output.
//
// A port set is the function (proto, port) -> first admitting rule of R,
// written as PORT entries from short to long prefixes:
//   HDR        any proto/port: the first any_port rule of R (A)
//   HDR+8      one protocol, all ports (incl. 0): first whole-protocol rule
//   HDR+8+n    port prefixes of the pieces where a port spec's rule is lower
// An entry is only written where it changes the answer of the shorter one,
// so the longest match is always the right rule.
//
// with_search() then adds what the engine's binary search over prefix
// lengths needs: markers, ropes, ROOT entries (length_search.cpp).
#include "compile.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include "cidr.hpp"
#include "length_search.hpp"
#include "common/error.hpp"
#include "port_ranges.hpp"

namespace podfence::policy {

bool operator==(const PolicyEntry& a, const PolicyEntry& b) {
    return std::memcmp(&a.key, &b.key, sizeof(a.key)) == 0 && std::memcmp(&a.val, &b.val, sizeof(a.val)) == 0;
}

bool operator<(const PolicyEntry& a, const PolicyEntry& b) {
    if (int c = std::memcmp(&a.key, &b.key, sizeof(a.key)); c != 0) return c < 0;
    return std::memcmp(&a.val, &b.val, sizeof(a.val)) < 0;
}

namespace {

constexpr std::uint32_t kHdr = PF_KEY_HDR_BITS;

// One PORT entry of a set, without the set id: (prefixlen, proto, port, rule).
using PortEntry = std::tuple<std::uint32_t, std::uint8_t, std::uint16_t, std::uint32_t>;
using PortEntries = std::vector<PortEntry>;

constexpr Protocol kPortProtocols[] = {Protocol::TCP, Protocol::UDP, Protocol::SCTP};

// `rset` is sorted ascending, so the first rule found is the lowest index.
PortEntries port_entries(const std::vector<Rule>& rules, const std::vector<std::uint32_t>& rset) {
    PortEntries out;
    std::optional<std::uint32_t> any;
    for (std::uint32_t r : rset)
        if (rules[r].any_port) {
            any = r;
            break;
        }
    if (any) out.emplace_back(kHdr, 0, 0, *any);

    for (Protocol proto : kPortProtocols) {
        std::optional<std::uint32_t> whole;
        std::vector<PortRange> ranges;
        for (std::uint32_t r : rset) {
            if (any && r >= *any) break; // rules after the first any_port rule never win
            for (const PortSpec& ps : rules[r].ports) {
                if (ps.protocol != proto) continue;
                if (!ps.has_port) {
                    if (!whole) whole = r;
                } else {
                    ranges.push_back({ps.port, ps.end_port, r});
                }
            }
        }
        std::optional<std::uint32_t> fallback = any;
        const auto p8 = static_cast<std::uint8_t>(proto);
        if (whole) {
            out.emplace_back(kHdr + 8, p8, 0, *whole);
            fallback = whole;
        }
        std::erase_if(ranges, [&](const PortRange& pr) { return fallback && pr.rule >= *fallback; });
        for (const PortRange& piece : min_rule_pieces(ranges))
            for (const PortPrefix& pp : range_to_prefixes(piece.lo, piece.hi))
                out.emplace_back(kHdr + 8 + pp.len, p8, pp.port, piece.rule);
    }
    return out;
}

// FNV-1a over the entries: hash for the dedupe table (which still compares
// the entries themselves), and the only key once the output is just counted.
std::uint64_t hash_of(const PortEntries& pe) {
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&](std::uint64_t v) {
        for (int i = 0; i < 8; ++i, v >>= 8)
            h = (h ^ (v & 0xff)) * 1099511628211ull;
    };
    for (const auto& [plen, proto, port, rule] : pe) {
        mix(plen);
        mix(proto);
        mix(port);
        mix(rule);
    }
    return h;
}

// Thrown past Output::give_up(): counting further would cost too much time.
struct TooBig {};

// The entries, up to max; past it only their number is kept (and memory is
// released) so an oversized policy fails with its real size, without
// holding hundreds of millions of entries. Counting stops at give_up().
struct Output {
    std::vector<PolicyEntry> entries;
    std::size_t max = 0;
    std::size_t needed = 0;

    bool counting() const { return needed > max; }
    std::size_t give_up() const { return std::max<std::size_t>(2 * max, max + (1u << 20)); }
    void add(const PolicyEntry& e) {
        if (++needed <= max)
            entries.push_back(e);
        else if (entries.capacity() != 0)
            std::vector<PolicyEntry>().swap(entries);
        else if (needed > give_up())
            throw TooBig{};
    }
};

struct Event {
    Cidr prefix;
    bool is_except = false;
    std::uint32_t peer = 0;
};

bool dfs_less(const Cidr& a, const Cidr& b) {
    return std::tie(a.addr, a.prefix_len) < std::tie(b.addr, b.prefix_len);
}

// Compiles one direction: ADDR entries for both families, PORT entries for
// the sets they reference. Set ids are per direction, from 1, in order of
// first use (deterministic).
class DirectionCompiler {
public:
    DirectionCompiler(const std::vector<Rule>& rules, std::uint8_t dir, Output& out)
        : rules_(rules), dir_(dir), out_(out) {}

    void compile_family(std::uint8_t family);
    void compile_allow_all();

private:
    std::uint32_t set_for(const std::vector<std::uint32_t>& rset);
    void emit(const PolicyEntry& e);
    void emit_port_set(const PortEntries& pe, std::uint32_t id);
    void emit_addr(const Cidr& c, std::uint32_t set);
    void apply(const Event& e, int sign);

    const std::vector<Rule>& rules_;
    std::uint8_t dir_;
    Output& out_;
    std::uint32_t next_set_ = 1;
    struct Hash {
        std::size_t operator()(const PortEntries& pe) const { return hash_of(pe); }
    };
    std::unordered_map<PortEntries, std::uint32_t, Hash> by_ports_;
    std::unordered_map<std::uint64_t, std::uint32_t> counted_ports_; // once out_.counting()

    // Walk state for the current family.
    std::vector<std::uint32_t> peer_rule_;
    std::vector<std::uint8_t> peer_in_;      // inside the peer's cidr
    std::vector<std::uint32_t> peer_exc_;    // inside this many of its excepts
    std::vector<std::uint32_t> rule_active_; // active peers per rule
    std::set<std::uint32_t> active_;         // rules with an active peer
};

std::uint32_t DirectionCompiler::set_for(const std::vector<std::uint32_t>& rset) {
    if (rset.empty()) return PF_SET_NONE;
    // Deduped by content, not by rule set: no per-region copy of R is kept,
    // so memory stays proportional to the output.
    PortEntries pe = port_entries(rules_, rset);
    if (auto it = by_ports_.find(pe); it != by_ports_.end()) return it->second;
    if (out_.counting()) {
        // Nothing more is written: remember a hash only, to count each
        // distinct set once.
        auto [it, fresh] = counted_ports_.emplace(hash_of(pe), next_set_);
        if (fresh) emit_port_set(pe, next_set_++); // counted, and its lengths noted
        return it->second;
    }
    const std::uint32_t id = next_set_++;
    emit_port_set(pe, id);
    by_ports_.emplace(std::move(pe), id);
    return id;
}

void DirectionCompiler::emit(const PolicyEntry& e) {
    out_.add(e);
}

void DirectionCompiler::emit_port_set(const PortEntries& pe, std::uint32_t id) {
    for (const auto& [plen, proto, port, rule] : pe) {
        PolicyEntry e;
        e.key.prefixlen = plen;
        e.key.kind = PF_KIND_PORT;
        e.key.dir = dir_;
        e.key.set = id;
        e.key.data[0] = proto;
        e.key.data[1] = static_cast<std::uint8_t>(port >> 8); // big endian
        e.key.data[2] = static_cast<std::uint8_t>(port & 0xff);
        e.val.rule = rule;
        emit(e);
    }
}

void DirectionCompiler::emit_addr(const Cidr& c, std::uint32_t set) {
    PolicyEntry e;
    e.key.prefixlen = kHdr + c.prefix_len;
    e.key.kind = PF_KIND_ADDR;
    e.key.dir = dir_;
    e.key.family = c.family;
    std::memcpy(e.key.data, c.addr.data(), sizeof(e.key.data));
    e.val.set = set;
    emit(e);
}

void DirectionCompiler::apply(const Event& e, int sign) {
    const std::uint32_t p = e.peer;
    const bool was = peer_in_[p] && peer_exc_[p] == 0;
    if (e.is_except)
        peer_exc_[p] += sign;
    else
        peer_in_[p] = sign > 0;
    const bool now = peer_in_[p] && peer_exc_[p] == 0;
    if (was == now) return;
    const std::uint32_t r = peer_rule_[p];
    if (now && rule_active_[r]++ == 0) active_.insert(r);
    if (!now && --rule_active_[r] == 0) active_.erase(r);
}

void DirectionCompiler::compile_family(std::uint8_t family) {
    peer_rule_.clear();
    std::vector<Event> events;
    for (std::uint32_t r = 0; r < rules_.size(); ++r) {
        const Rule& rule = rules_[r];
        if (rule.any_peer) {
            Cidr all;
            all.family = family;
            events.push_back({all, false, static_cast<std::uint32_t>(peer_rule_.size())});
            peer_rule_.push_back(r);
            continue;
        }
        for (const IpBlock& b : rule.peers) {
            if (b.cidr.family != family) continue;
            const auto p = static_cast<std::uint32_t>(peer_rule_.size());
            peer_rule_.push_back(r);
            events.push_back({b.cidr, false, p});
            for (const Cidr& ex : b.except)
                events.push_back({ex, true, p});
        }
    }
    // Within one prefix, cidrs before excepts (an except equal to its own
    // peer's cidr is rejected by the parser, so order is only for determinism).
    std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
        if (a.prefix != b.prefix) return dfs_less(a.prefix, b.prefix);
        return std::tie(a.is_except, a.peer) < std::tie(b.is_except, b.peer);
    });
    peer_in_.assign(peer_rule_.size(), 0);
    peer_exc_.assign(peer_rule_.size(), 0);
    rule_active_.assign(rules_.size(), 0);
    active_.clear();

    struct Frame {
        Cidr prefix;
        std::size_t begin, end; // its events
        std::uint32_t set;      // what the longest match returns inside it
    };
    std::vector<Frame> stack;
    auto pop = [&] {
        const Frame& f = stack.back();
        for (std::size_t i = f.end; i-- > f.begin;)
            apply(events[i], -1);
        stack.pop_back();
    };

    for (std::size_t i = 0; i < events.size();) {
        std::size_t j = i;
        while (j < events.size() && events[j].prefix == events[i].prefix)
            ++j;
        const Cidr& prefix = events[i].prefix;
        while (!stack.empty() && !cidr_covers(stack.back().prefix, prefix))
            pop();
        for (std::size_t k = i; k < j; ++k)
            apply(events[k], +1);
        // Rules after the first any_port one never decide anything.
        std::vector<std::uint32_t> rset;
        for (std::uint32_t r : active_) {
            rset.push_back(r);
            if (rules_[r].any_port) break;
        }
        const std::uint32_t set = set_for(rset);
        // Same answer as the enclosing prefix (or a deny with none): the
        // shorter entry already gives it.
        const std::uint32_t inherited = stack.empty() ? PF_SET_NONE : stack.back().set;
        if (set != inherited) emit_addr(prefix, set);
        stack.push_back({prefix, i, j, set});
        i = j;
    }
    while (!stack.empty())
        pop();
}

void DirectionCompiler::compile_allow_all() {
    const std::uint32_t id = next_set_++;
    for (std::uint8_t family : {std::uint8_t{PF_FAMILY_V4}, std::uint8_t{PF_FAMILY_V6}}) {
        Cidr all;
        all.family = family;
        emit_addr(all, id);
    }
    PolicyEntry e;
    e.key.prefixlen = kHdr;
    e.key.kind = PF_KIND_PORT;
    e.key.dir = dir_;
    e.key.set = id;
    e.val.rule = PF_RULE_DEFAULT;
    emit(e);
}

} // namespace

std::vector<PolicyEntry> compile(const Policy& policy, std::size_t max_entries) {
    Output out;
    out.max = max_entries;
    try {
        for (Direction d : {Direction::Ingress, Direction::Egress}) {
            DirectionCompiler dc(policy.rules(d), static_cast<std::uint8_t>(d), out);
            if (!policy.isolated(d)) {
                dc.compile_allow_all();
            } else {
                dc.compile_family(PF_FAMILY_V4);
                dc.compile_family(PF_FAMILY_V6);
            }
        }
    } catch (const TooBig&) {
        throw Error(Code::InvalidPolicy,
                    "podfence.io/policy: policy needs at least " + std::to_string(out.needed) +
                        " map entries, more than the per-pod capacity " + std::to_string(max_entries));
    }
    // The search's markers and ROOT entries would come on top: a lower bound.
    if (out.counting())
        throw Error(Code::InvalidPolicy,
                    "podfence.io/policy: policy needs at least " + std::to_string(out.needed) +
                        " map entries, more than the per-pod capacity " + std::to_string(max_entries));
    return with_search(std::move(out.entries), max_entries);
}

} // namespace podfence::policy
