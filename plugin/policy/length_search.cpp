// Markers and ropes for the engine's binary search over prefix lengths
// (layout and walk: bpf/podfence_abi.h).
//
// Per table (ADDR of one direction and family, PORT of one direction and
// port set) the distinct lengths form a balanced search tree over their
// sorted list. A real entry of length l needs a marker at every length
// m < l on its search path, so that the probe at m hits and the search
// moves on to longer lengths. A marker answers like the longest real entry
// of length <= m that covers it: visiting the real entries in DFS order
// (by data, then length) keeps exactly the entries covering the current one
// on a stack, and the deepest of them not longer than m is that answer.
#include "length_search.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "cidr.hpp"
#include "common/error.hpp"

namespace podfence::policy {

namespace {

constexpr std::uint32_t kKeyHdrBits = PF_KEY_HDR_BITS;

std::uint32_t data_len(const pf_policy_key& k) {
    return k.prefixlen - kKeyHdrBits;
}

// Zero every data bit at or beyond `len` (the key data is an address or a
// port key, both big-endian bit strings).
void mask_data(pf_policy_key& k, std::uint32_t len) {
    std::array<std::uint8_t, 16> d;
    std::memcpy(d.data(), k.data, d.size());
    d = mask_addr(d, len);
    std::memcpy(k.data, d.data(), d.size());
}

// `outer` (length lo) covers `inner` (length li >= lo): same data up to lo.
bool covers(const PolicyEntry& outer, const PolicyEntry& inner) {
    if (data_len(outer.key) > data_len(inner.key)) return false;
    pf_policy_key k = inner.key;
    mask_data(k, data_len(outer.key));
    return std::memcmp(k.data, outer.key.data, sizeof(k.data)) == 0;
}

std::string_view key_bytes(const pf_policy_key& k) {
    return {reinterpret_cast<const char*>(&k), sizeof(k)};
}

struct KeyHash {
    std::size_t operator()(const pf_policy_key& k) const {
        return std::hash<std::string_view>{}(key_bytes(k));
    }
};
struct KeyEq {
    bool operator()(const pf_policy_key& a, const pf_policy_key& b) const {
        return key_bytes(a) == key_bytes(b);
    }
};
using KeySet = std::unordered_set<pf_policy_key, KeyHash, KeyEq>;

// The balanced search tree over the sorted distinct lengths of one table:
// node i is lens[i], its subtrees are built the same way from each half.
class LengthTree {
public:
    explicit LengthTree(std::vector<std::uint32_t> lens) : lens_(std::move(lens)) {
        left_.assign(lens_.size(), -1);
        right_.assign(lens_.size(), -1);
        root_ = build(0, static_cast<int>(lens_.size()) - 1);
    }

    // The rope of the whole tree, for the ROOT entry.
    std::uint64_t root_rope() const { return rope(root_); }
    // What an entry of length lens[i] carries: the rope of i's right subtree.
    std::uint64_t rope_after(std::uint32_t len) const { return rope(right_[index(len)]); }
    // The lengths shorter than `len` at which the search for `len` must hit.
    std::vector<std::uint32_t> marker_lengths(std::uint32_t len) const {
        std::vector<std::uint32_t> out;
        const int target = index(len);
        for (int x = root_; x != target;) {
            if (x < target) out.push_back(lens_[static_cast<std::size_t>(x)]);
            x = x < target ? right_[static_cast<std::size_t>(x)] : left_[static_cast<std::size_t>(x)];
        }
        return out;
    }

private:
    int build(int lo, int hi) {
        if (lo > hi) return -1;
        const int mid = lo + (hi - lo) / 2;
        left_[static_cast<std::size_t>(mid)] = build(lo, mid - 1);
        right_[static_cast<std::size_t>(mid)] = build(mid + 1, hi);
        return mid;
    }
    int index(std::uint32_t len) const {
        return static_cast<int>(std::lower_bound(lens_.begin(), lens_.end(), len) - lens_.begin());
    }
    // The lengths of the leftmost path down from node x, PF_ROPE_END-padded.
    std::uint64_t rope(int x) const {
        std::uint64_t r = PF_ROPE_EMPTY;
        for (unsigned i = 0; x >= 0; ++i, x = left_[static_cast<std::size_t>(x)]) {
            if (i == PF_ROPE_MAX) throw std::logic_error("length search tree deeper than PF_ROPE_MAX");
            r &= ~(0xffull << (8 * i));
            r |= std::uint64_t{lens_[static_cast<std::size_t>(x)]} << (8 * i);
        }
        return r;
    }

    std::vector<std::uint32_t> lens_;
    std::vector<int> left_, right_;
    int root_ = -1;
};

// A table: ADDR entries of one (dir, family) or PORT entries of one (dir, set).
using TableId = std::tuple<std::uint8_t, std::uint8_t, std::uint8_t, std::uint32_t>;

TableId table_of(const pf_policy_key& k) {
    return {k.kind, k.dir, k.family, k.set};
}

// Tables apart, then DFS order within a table: by data, then length, so an
// entry comes after every entry covering it.
bool table_dfs_less(const PolicyEntry& a, const PolicyEntry& b) {
    if (table_of(a.key) != table_of(b.key)) return table_of(a.key) < table_of(b.key);
    if (int c = std::memcmp(a.key.data, b.key.data, sizeof(a.key.data)); c != 0) return c < 0;
    return a.key.prefixlen < b.key.prefixlen;
}

// Plain entries are the compiler's (or a test's) output: a broken one
// would make a wrong search, so refuse it loudly.
void check_plain(const PolicyEntry& e) {
    const std::uint32_t max_len = e.key.kind == PF_KIND_PORT     ? PF_PORT_KEY_BITS
                                  : e.key.kind != PF_KIND_ADDR   ? 0
                                  : e.key.family == PF_FAMILY_V4 ? 32
                                  : e.key.family == PF_FAMILY_V6 ? 128
                                                                 : 0;
    if (max_len == 0) throw std::logic_error("with_search: plain entries are ADDR (v4/v6) or PORT entries");
    if (e.key.prefixlen < kKeyHdrBits || data_len(e.key) > max_len)
        throw std::logic_error("with_search: prefixlen out of range for its kind");
    pf_policy_key k = e.key;
    mask_data(k, data_len(k));
    if (std::memcmp(k.data, e.key.data, sizeof(k.data)) != 0)
        throw std::logic_error("with_search: key data not canonical (bits past prefixlen)");
}

class Builder {
public:
    Builder(std::size_t needed, std::size_t max) : needed_(needed), max_(max) {}

    // One table's entries, in DFS order: sets their ropes, appends the ROOT
    // entry and the markers to `out`.
    void table(std::span<PolicyEntry> real, std::vector<PolicyEntry>& out) {
        const bool port = real.front().key.kind == PF_KIND_PORT;
        std::vector<std::uint32_t> lens;
        for (const PolicyEntry& e : real)
            lens.push_back(data_len(e.key));
        std::sort(lens.begin(), lens.end());
        lens.erase(std::unique(lens.begin(), lens.end()), lens.end());
        const LengthTree tree(std::move(lens));

        PolicyEntry root;
        root.key.prefixlen = PF_ROOT_PREFIXLEN;
        root.key.kind = port ? PF_KIND_PORT_ROOT : PF_KIND_ADDR_ROOT;
        root.key.dir = real.front().key.dir;
        root.key.family = real.front().key.family;
        root.key.set = real.front().key.set;
        root.val.rope = tree.root_rope();
        add(out, root);

        markers_.clear();
        covering_.clear();
        for (PolicyEntry& e : real) {
            while (!covering_.empty() && !covers(*covering_.back(), e))
                covering_.pop_back();
            for (std::uint32_t m : tree.marker_lengths(data_len(e.key))) {
                PolicyEntry mk;
                mk.key = e.key;
                mk.key.prefixlen = kKeyHdrBits + m;
                mask_data(mk.key, m);
                // A real entry with this key covers e, so it is on the stack.
                const PolicyEntry* best = nullptr;
                for (auto it = covering_.rbegin(); it != covering_.rend() && !best; ++it)
                    if (data_len((*it)->key) <= m) best = *it;
                if ((best && data_len(best->key) == m) || !markers_.insert(mk.key).second) continue;
                if (port)
                    mk.val.rule = best ? best->val.rule : PF_RULE_NONE;
                else
                    mk.val.set = best ? best->val.set : PF_SET_NONE;
                mk.val.rope = tree.rope_after(m);
                add(out, mk);
            }
            e.val.rope = tree.rope_after(data_len(e.key));
            covering_.push_back(&e);
        }
    }

private:
    void add(std::vector<PolicyEntry>& out, const PolicyEntry& e) {
        if (++needed_ > max_)
            throw Error(Code::InvalidPolicy,
                        "podfence.io/policy: policy needs at least " + std::to_string(needed_) +
                            " map entries, more than the per-pod capacity " + std::to_string(max_));
        out.push_back(e);
    }

    std::size_t needed_, max_;
    KeySet markers_;                           // of the current table
    std::vector<const PolicyEntry*> covering_; // real entries covering the current one
};

} // namespace

std::vector<PolicyEntry> with_search(std::vector<PolicyEntry> plain, std::size_t max_entries) {
    for (const PolicyEntry& e : plain)
        check_plain(e);
    std::sort(plain.begin(), plain.end(), table_dfs_less);
    for (std::size_t i = 1; i < plain.size(); ++i)
        if (std::memcmp(&plain[i - 1].key, &plain[i].key, sizeof(pf_policy_key)) == 0)
            throw std::logic_error("with_search: duplicate key");
    Builder b(plain.size(), max_entries);
    std::vector<PolicyEntry> extra; // ROOT entries and markers
    for (std::size_t i = 0; i < plain.size();) {
        std::size_t j = i + 1;
        while (j < plain.size() && table_of(plain[j].key) == table_of(plain[i].key))
            ++j;
        b.table(std::span<PolicyEntry>(plain).subspan(i, j - i), extra);
        i = j;
    }
    plain.insert(plain.end(), extra.begin(), extra.end());
    std::sort(plain.begin(), plain.end());
    return plain;
}

} // namespace podfence::policy
