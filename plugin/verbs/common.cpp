#include "../bpf/attach.hpp"
#include "../bpf/datapath.hpp"
#include "../common/error.hpp"
#include "../bpf/layout.hpp"
#include "verbs.hpp"

namespace podfence::verbs {

std::string resolve_tc_backend(cni::TcBackend configured) {
    switch (configured) {
    case cni::TcBackend::Legacy: return "legacy";
    case cni::TcBackend::Tcx:
        if (!bpf::kernel_has_tcx())
            throw Error(Code::UnsupportedField,
                        "tcBackend: \"tcx\" is not supported by this kernel (tcx needs Linux >= 6.6); "
                        "use \"auto\" or \"legacy\"");
        return "tcx";
    case cni::TcBackend::Auto: break;
    }
    return bpf::kernel_has_tcx() ? "tcx" : "legacy";
}

} // namespace podfence::verbs
