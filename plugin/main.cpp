// podfence: a chained CNI plugin when CNI_COMMAND is set, the operator CLI
// otherwise.
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <map>
#include <string>

#include "cli/cli.hpp"
#include "cni/env.hpp"
#include "cni/netconf.hpp"
#include "cni/output.hpp"
#include "cni/version.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "verbs/prepare.hpp"
#include "verbs/verbs.hpp"

namespace {

using namespace podfence;

using Handler = verbs::Output (*)(const cni::Env&, const cni::NetConf&);
const std::map<cni::Verb, Handler> kVerbs = {
    {cni::Verb::Add, verbs::add}, {cni::Verb::Del, verbs::del},       {cni::Verb::Check, verbs::check},
    {cni::Verb::Gc, verbs::gc},   {cni::Verb::Status, verbs::status},
};

log::Level to_log_level(cni::LogLevel l) {
    switch (l) {
    case cni::LogLevel::Debug: return log::Level::Debug;
    case cni::LogLevel::Info: return log::Level::Info;
    case cni::LogLevel::Warn: return log::Level::Warn;
    case cni::LogLevel::Error: return log::Level::Error;
    }
    return log::Level::Info;
}

// Exactly one JSON document on stdout: the result, VERSION, or the error.
void emit(const nlohmann::json& doc) {
    std::cout << doc.dump() << std::endl;
}

int run_cni() {
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::string version; // for the error reply; known once the netconf parsed
    try {
        cni::Env env = cni::read_env(cni::process_env());
        if (env.verb == cni::Verb::Version) {
            emit(cni::version_json());
            return 0;
        }
        // Errors answer in the configuration's version when podfence speaks it.
        if (std::string v = cni::sniff_cni_version(input); cni::is_supported_version(v)) version = v;
        cni::NetConf conf = cni::parse_netconf(input);
        log::open(conf.log_file, to_log_level(conf.log_level));
        verbs::require_verb_version(env.verb, conf);
        log::debug(std::string(cni::verb_name(env.verb)) + " container=" + env.container_id +
                   " ifname=" + env.ifname + " netns=" + env.netns + " args=" + env.args);
        if (verbs::Output out = kVerbs.at(env.verb)(env, conf)) emit(*out);
        return 0;
    } catch (const Error& e) {
        log::error(e.what());
        emit(cni::error_json(version, e));
    } catch (const std::exception& e) {
        // Not ours (allocation, filesystem, JSON library): report as I/O.
        Error io(Code::Io, e.what());
        log::error(io.what());
        emit(cni::error_json(version, io));
    }
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    if (std::getenv("CNI_COMMAND")) return run_cni();
    return podfence::cli::run(argc, argv);
}
