#include "port_ranges.hpp"

#include <algorithm>
#include <set>
#include <utility>

namespace podfence::policy {

std::vector<PortPrefix> range_to_prefixes(std::uint32_t lo, std::uint32_t hi) {
    std::vector<PortPrefix> out;
    while (lo <= hi) {
        // Largest aligned block starting at lo that stays within hi.
        std::uint32_t size = lo == 0 ? 0x10000 : (lo & -lo);
        while (lo + size - 1 > hi)
            size >>= 1;
        std::uint8_t bits = 0;
        while ((1u << bits) < size)
            ++bits;
        out.push_back({static_cast<std::uint16_t>(lo), static_cast<std::uint8_t>(16 - bits)});
        lo += size;
    }
    return out;
}

std::vector<PortRange> min_rule_pieces(const std::vector<PortRange>& ranges) {
    // Sweep over boundaries: at each position, open ranges starting there and
    // close those ending just before; the active minimum is the piece's rule.
    std::vector<std::pair<std::uint32_t, std::uint32_t>> opens, closes; // (pos, rule)
    for (const auto& r : ranges) {
        opens.emplace_back(r.lo, r.rule);
        closes.emplace_back(r.hi + 1, r.rule);
    }
    std::sort(opens.begin(), opens.end());
    std::sort(closes.begin(), closes.end());
    std::vector<std::uint32_t> points;
    for (const auto& o : opens)
        points.push_back(o.first);
    for (const auto& c : closes)
        points.push_back(c.first);
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());

    std::vector<PortRange> out;
    std::multiset<std::uint32_t> active;
    std::size_t oi = 0, ci = 0;
    for (std::size_t i = 0; i < points.size(); ++i) {
        const std::uint32_t pos = points[i];
        for (; ci < closes.size() && closes[ci].first == pos; ++ci)
            active.erase(active.find(closes[ci].second));
        for (; oi < opens.size() && opens[oi].first == pos; ++oi)
            active.insert(opens[oi].second);
        if (active.empty() || i + 1 == points.size()) continue;
        const std::uint32_t rule = *active.begin();
        const std::uint32_t hi = points[i + 1] - 1;
        if (!out.empty() && out.back().rule == rule && out.back().hi + 1 == pos)
            out.back().hi = hi;
        else
            out.push_back({pos, hi, rule});
    }
    return out;
}

} // namespace podfence::policy
