// CNI_* environment validation per verb.
#include <doctest/doctest.h>

#include <map>

#include "cni/env.hpp"
#include "common/error.hpp"

using namespace podfence;
using namespace podfence::cni;

namespace {

EnvLookup from(std::map<std::string, std::string> vars) {
    return [vars](const char* name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

std::map<std::string, std::string> full(const std::string& cmd) {
    return {{"CNI_COMMAND", cmd},          {"CNI_CONTAINERID", "abc123"},
            {"CNI_NETNS", "/run/netns/x"}, {"CNI_IFNAME", "eth0"},
            {"CNI_PATH", "/opt/cni/bin"},  {"CNI_ARGS", "K8S_POD_NAME=p;IgnoreUnknown=1"}};
}

// Runs read_env and returns the error code and message (code 0: no error).
std::pair<unsigned, std::string> outcome(std::map<std::string, std::string> vars) {
    try {
        read_env(from(std::move(vars)));
        return {0, ""};
    } catch (const Error& e) {
        return {static_cast<unsigned>(e.code()), e.what()};
    }
}

} // namespace

TEST_CASE("a complete ADD environment is read as given") {
    Env env = read_env(from(full("ADD")));
    CHECK(env.verb == Verb::Add);
    CHECK(env.container_id == "abc123");
    CHECK(env.netns == "/run/netns/x");
    CHECK(env.ifname == "eth0");
    CHECK(env.path == "/opt/cni/bin");
    REQUIRE(env.arg_pairs.size() == 2);
    CHECK(env.arg_pairs[0] == std::pair<std::string, std::string>{"K8S_POD_NAME", "p"});
}

TEST_CASE("required variables per verb: missing => code 4 naming the variable") {
    struct Row {
        const char* verb;
        const char* var;
        bool required;
    };
    const Row rows[] = {
        {"ADD", "CNI_CONTAINERID", true},
        {"ADD", "CNI_NETNS", true},
        {"ADD", "CNI_IFNAME", true},
        {"ADD", "CNI_PATH", true},
        {"ADD", "CNI_ARGS", false},
        {"CHECK", "CNI_CONTAINERID", true},
        {"CHECK", "CNI_NETNS", true},
        {"CHECK", "CNI_IFNAME", true},
        {"CHECK", "CNI_PATH", true},
        {"DEL", "CNI_CONTAINERID", true},
        {"DEL", "CNI_NETNS", false},
        {"DEL", "CNI_IFNAME", true},
        {"DEL", "CNI_PATH", true},
        {"GC", "CNI_PATH", true},
        {"GC", "CNI_CONTAINERID", false},
        {"GC", "CNI_NETNS", false},
        {"GC", "CNI_IFNAME", false},
        {"STATUS", "CNI_PATH", true},
        {"STATUS", "CNI_CONTAINERID", false},
        {"STATUS", "CNI_IFNAME", false},
        {"VERSION", "CNI_PATH", false},
        {"VERSION", "CNI_CONTAINERID", false},
    };
    for (const Row& r : rows) {
        CAPTURE(r.verb);
        CAPTURE(r.var);
        for (bool empty : {false, true}) {
            auto vars = full(r.verb);
            if (empty)
                vars[r.var] = "";
            else
                vars.erase(r.var);
            auto [code, msg] = outcome(vars);
            if (r.required) {
                CHECK(code == 4);
                CHECK(msg.find(r.var) != std::string::npos);
            } else {
                CHECK(code == 0);
            }
        }
    }
}

TEST_CASE("DEL accepts an empty CNI_NETNS (containerd's second DEL)") {
    auto vars = full("DEL");
    vars["CNI_NETNS"] = "";
    Env env = read_env(from(vars));
    CHECK(env.verb == Verb::Del);
    CHECK(env.netns.empty());
}

TEST_CASE("CNI_COMMAND missing or unknown => code 4") {
    auto vars = full("ADD");
    vars.erase("CNI_COMMAND");
    CHECK(outcome(vars).first == 4);
    vars["CNI_COMMAND"] = "add";
    auto [code, msg] = outcome(vars);
    CHECK(code == 4);
    CHECK(msg.find("\"add\"") != std::string::npos);
}

TEST_CASE("every verb name parses") {
    CHECK(parse_verb("ADD") == Verb::Add);
    CHECK(parse_verb("DEL") == Verb::Del);
    CHECK(parse_verb("CHECK") == Verb::Check);
    CHECK(parse_verb("GC") == Verb::Gc);
    CHECK(parse_verb("STATUS") == Verb::Status);
    CHECK(parse_verb("VERSION") == Verb::Version);
    CHECK(verb_name(Verb::Gc) == "GC");
}

TEST_CASE("container ID and ifname are validated as the spec says") {
    for (const char* bad : {"-abc", "a/b", "a b", "_x", "abc$"}) {
        auto vars = full("ADD");
        vars["CNI_CONTAINERID"] = bad;
        CAPTURE(bad);
        auto [code, msg] = outcome(vars);
        CHECK(code == 4);
        CHECK(msg.find("CNI_CONTAINERID") != std::string::npos);
    }
    for (const char* good : {"a", "A-b_c.d", "0123456789abcdef"}) {
        auto vars = full("ADD");
        vars["CNI_CONTAINERID"] = good;
        CHECK(outcome(vars).first == 0);
    }
    for (const char* bad : {".", "..", "eth/0", "eth:0", "eth 0", "a23456789012345x"}) {
        auto vars = full("DEL");
        vars["CNI_IFNAME"] = bad;
        CAPTURE(bad);
        auto [code, msg] = outcome(vars);
        CHECK(code == 4);
        CHECK(msg.find("CNI_IFNAME") != std::string::npos);
    }
    auto vars = full("ADD");
    vars["CNI_IFNAME"] = "a23456789012345"; // 15 bytes is the limit
    CHECK(outcome(vars).first == 0);
}

TEST_CASE("malformed CNI_ARGS items are skipped, not fatal") {
    auto vars = full("ADD");
    vars["CNI_ARGS"] = "A=1;junk;=x;B=";
    Env env = read_env(from(vars));
    REQUIRE(env.arg_pairs.size() == 2);
    CHECK(env.arg_pairs[1].first == "B");
    CHECK(env.arg_pairs[1].second.empty());
}
