#include <sys/stat.h>

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

bool has_state(const std::string& bpffs_root) {
    struct stat st {};
    std::string dir = bpf::layout::podfence_dir(bpffs_root);
    return bpf::is_bpffs(bpffs_root) && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

} // namespace podfence::verbs
