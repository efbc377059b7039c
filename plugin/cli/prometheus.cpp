#include "prometheus.hpp"

#include <algorithm>
#include <stdexcept>

namespace podfence::cli::prom {
namespace {

bool name_char(char c, bool first, bool colon) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
    if (colon && c == ':') return true;
    return !first && c >= '0' && c <= '9';
}

bool valid_name(std::string_view n, bool colon) {
    if (n.empty()) return false;
    for (std::size_t i = 0; i < n.size(); ++i)
        if (!name_char(n[i], i == 0, colon)) return false;
    return true;
}

std::string escape(std::string_view v, bool quote) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (quote && c == '"')
            out += "\\\"";
        else
            out += c;
    }
    return out;
}

} // namespace

std::string escape_label_value(std::string_view v) {
    return escape(v, true);
}

std::string escape_help(std::string_view v) {
    return escape(v, false);
}

bool valid_metric_name(std::string_view n) {
    return valid_name(n, true);
}

bool valid_label_name(std::string_view n) {
    return valid_name(n, false) && !n.starts_with("__");
}

void Exposition::family(const std::string& name, Type type, const std::string& help) {
    if (!valid_metric_name(name)) throw std::logic_error("invalid metric name " + name);
    if (type == Type::Counter && !name.ends_with("_total"))
        throw std::logic_error("counter " + name + " is not named *_total");
    if (std::any_of(families_.begin(), families_.end(), [&](const Family& f) { return f.name == name; }))
        throw std::logic_error("metric family " + name + " declared twice");
    families_.push_back(Family{name, help, type, {}, false, {}, {}});
}

Exposition::Family& Exposition::find(const std::string& name) {
    for (auto& f : families_)
        if (f.name == name) return f;
    throw std::logic_error("metric family " + name + " is not declared");
}

void Exposition::sample(const std::string& name, const Labels& labels, std::uint64_t value) {
    Family& f = find(name);
    std::vector<std::string> names;
    std::string rendered;
    for (const auto& [k, v] : labels) {
        if (!valid_label_name(k)) throw std::logic_error("invalid label name " + k + " in " + name);
        names.push_back(k);
        rendered += (rendered.empty() ? "{" : ",") + k + "=\"" + escape_label_value(v) + "\"";
    }
    if (!rendered.empty()) rendered += "}";
    if (!f.labels_fixed) {
        std::vector<std::string> sorted = names;
        std::sort(sorted.begin(), sorted.end());
        if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
            throw std::logic_error("label repeated in " + name);
        f.label_names = names;
        f.labels_fixed = true;
    } else if (names != f.label_names) {
        throw std::logic_error("labels of " + name + " differ between its samples");
    }
    // Same label names in the same order: equal renderings are equal series.
    if (!f.series.insert(rendered).second) throw std::logic_error("duplicate series " + name + rendered);
    f.lines += name + rendered + " " + std::to_string(value) + "\n";
}

std::string Exposition::text() const {
    std::string out;
    for (const auto& f : families_) {
        out += "# HELP " + f.name + " " + escape_help(f.help) + "\n";
        out += "# TYPE " + f.name + (f.type == Type::Counter ? " counter\n" : " gauge\n");
        out += f.lines;
    }
    return out;
}

} // namespace podfence::cli::prom
