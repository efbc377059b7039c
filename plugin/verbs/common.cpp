#include "../bpf/attach.hpp"
#include "../bpf/datapath.hpp"
#include "../common/error.hpp"
#include "../bpf/layout.hpp"
#include "verbs.hpp"

namespace podfence::verbs {

bpf::AttachMode attach_mode_for(const cni::NetConf& conf) {
    using bpf::AttachMode;
    if (conf.mode == cni::Mode::Xdp)
        return conf.xdp_mode == cni::XdpMode::Generic ? AttachMode::XdpGeneric : AttachMode::XdpNative;
    switch (conf.tc_backend) {
    case cni::TcBackend::Legacy: return AttachMode::TcLegacy;
    case cni::TcBackend::Tcx:
        if (!bpf::kernel_has_tcx())
            throw Error(Code::UnsupportedField,
                        "tcBackend: \"tcx\" is not supported by this kernel (tcx needs Linux >= 6.6); "
                        "use \"auto\" or \"legacy\"");
        return AttachMode::Tcx;
    case cni::TcBackend::Auto: break;
    }
    return bpf::kernel_has_tcx() ? AttachMode::Tcx : AttachMode::TcLegacy;
}

} // namespace podfence::verbs
