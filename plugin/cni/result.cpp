#include "result.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "../common/error.hpp"
#include "version.hpp"

namespace podfence::cni {
namespace {

using nlohmann::json;

[[noreturn]] void bad_field(const std::string& field, const std::string& why) {
    throw Error(Code::InvalidConfig, "prevResult." + field + ": " + why);
}

std::string req_string(const json& obj, const std::string& at, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) bad_field(at + "." + key, "missing or not a string");
    return it->get<std::string>();
}

std::string opt_string(const json& obj, const std::string& at, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return "";
    if (!it->is_string()) bad_field(at + "." + key, "must be a string, got " + std::string(it->type_name()));
    return it->get<std::string>();
}

const json* opt_array(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    if (!it->is_array()) bad_field(key, "must be an array, got " + std::string(it->type_name()));
    return &*it;
}

int cidr_family(std::string_view cidr, bool need_prefix) {
    auto slash = cidr.find('/');
    if (need_prefix && slash == std::string_view::npos) return 0;
    std::string addr(cidr.substr(0, slash));
    unsigned char buf[16];
    int family = 0;
    if (inet_pton(AF_INET, addr.c_str(), buf) == 1)
        family = 4;
    else if (inet_pton(AF_INET6, addr.c_str(), buf) == 1)
        family = 6;
    if (family == 0 || slash == std::string_view::npos) return family;
    std::string_view len = cidr.substr(slash + 1);
    unsigned n = 0;
    auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
    if (ec != std::errc() || p != len.data() + len.size() || len.empty() || n > (family == 4 ? 32u : 128u))
        return 0;
    return family;
}

ResultIp parse_ip(const json& ip, std::size_t i, std::size_t n_interfaces, bool versioned) {
    std::string at = "ips[" + std::to_string(i) + "]";
    if (!ip.is_object()) bad_field(at, "must be an object");
    ResultIp out;
    out.address = req_string(ip, at, "address");
    out.family = cidr_family(out.address, true);
    if (out.family == 0)
        bad_field(at + ".address", "\"" + out.address + "\" is not an address/prefix-length");
    out.gateway = opt_string(ip, at, "gateway");
    if (!out.gateway.empty() && cidr_family(out.gateway, false) != out.family)
        bad_field(at + ".gateway", "\"" + out.gateway + "\" is not an address of the same family as address");
    if (auto it = ip.find("interface"); it != ip.end() && !it->is_null()) {
        if (!it->is_number_integer() || it->get<long long>() < 0 ||
            static_cast<std::size_t>(it->get<long long>()) >= n_interfaces)
            bad_field(at + ".interface", it->dump() + " is not an index into interfaces (" +
                                             std::to_string(n_interfaces) + " given)");
        out.interface = it->get<int>();
    }
    // 0.x results carry "version"; tolerate its absence (it is derivable)
    // but not a wrong one.
    if (std::string v = opt_string(ip, at, "version"); versioned && !v.empty()) {
        if (v != "4" && v != "6") bad_field(at + ".version", "\"" + v + "\" is not \"4\" or \"6\"");
        if (std::stoi(v) != out.family)
            bad_field(at + ".version", "\"" + v + "\" does not match address " + out.address);
    }
    return out;
}

} // namespace

std::vector<policy::SourceAddr> pod_sources(const Result& prev, std::string_view ifname) {
    std::vector<policy::SourceAddr> out;
    for (const ResultIp& ip : prev.ips) {
        if (ip.interface) {
            const ResultInterface& i = prev.interfaces.at(static_cast<std::size_t>(*ip.interface));
            if (i.name != ifname || !i.sandbox) continue;
        }
        // parse_result checked the address already.
        if (auto s = policy::parse_source(ip.address)) out.push_back(*s);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

int address_family(std::string_view cidr) {
    return cidr_family(cidr, false);
}

bool Result::has_host_interface(std::string_view name) const {
    for (const auto& i : interfaces)
        if (i.name == name && !i.sandbox) return true;
    return false;
}

Result parse_result(const json& prev, std::string_view version) {
    if (!prev.is_object()) throw Error(Code::InvalidConfig, "prevResult: must be an object");
    Result r;
    r.cni_version = std::string(version);
    if (auto it = prev.find("cniVersion"); it != prev.end() && !it->is_string())
        bad_field("cniVersion", "must be a string");
    if (const json* ifs = opt_array(prev, "interfaces")) {
        for (std::size_t i = 0; i < ifs->size(); ++i) {
            const json& f = (*ifs)[i];
            std::string at = "interfaces[" + std::to_string(i) + "]";
            if (!f.is_object()) bad_field(at, "must be an object");
            ResultInterface out;
            out.name = req_string(f, at, "name");
            out.mac = opt_string(f, at, "mac");
            // Spec: an empty or absent sandbox means a host interface.
            std::string sb = opt_string(f, at, "sandbox");
            if (!sb.empty()) out.sandbox = sb;
            r.interfaces.push_back(std::move(out));
        }
    }
    bool versioned = result_has_ip_version(version);
    if (const json* ips = opt_array(prev, "ips"))
        for (std::size_t i = 0; i < ips->size(); ++i)
            r.ips.push_back(parse_ip((*ips)[i], i, r.interfaces.size(), versioned));
    if (const json* routes = opt_array(prev, "routes")) {
        for (std::size_t i = 0; i < routes->size(); ++i) {
            const json& rt = (*routes)[i];
            std::string at = "routes[" + std::to_string(i) + "]";
            if (!rt.is_object()) bad_field(at, "must be an object");
            r.routes.push_back({req_string(rt, at, "dst"), opt_string(rt, at, "gw")});
        }
    }
    if (auto it = prev.find("dns"); it != prev.end() && !it->is_null()) {
        if (!it->is_object()) bad_field("dns", "must be an object");
        r.dns = *it;
    }
    return r;
}

nlohmann::json convert_result(const json& prev, std::string_view to_version) {
    json out = prev;
    out["cniVersion"] = std::string(to_version);
    auto ips = out.find("ips");
    if (ips == out.end() || !ips->is_array()) return out;
    bool versioned = result_has_ip_version(to_version);
    for (json& ip : *ips) {
        if (!ip.is_object()) continue;
        if (!versioned) {
            ip.erase("version");
        } else if (auto a = ip.find("address"); a != ip.end() && a->is_string()) {
            int fam = address_family(a->get<std::string>());
            if (fam != 0) ip["version"] = std::to_string(fam);
        }
    }
    return out;
}

} // namespace podfence::cni
