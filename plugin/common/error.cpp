#include "error.hpp"

#include <cstring>

namespace podfence {

std::string failed(std::string_view call, std::string_view object, int err) {
    if (err < 0) err = -err;
    std::string s(call);
    s += "(";
    s += object;
    s += ") failed: ";
    s += std::strerror(err);
    return s;
}

Error errno_error(Code code, std::string_view call, std::string_view object, int err, std::string_view hint) {
    std::string msg = failed(call, object, err);
    if (!hint.empty()) {
        msg += " (";
        msg += hint;
        msg += ")";
    }
    return Error(code, std::move(msg));
}

void Problems::raise(Code code, std::string_view context) const {
    if (list_.empty()) return;
    std::string msg(context);
    msg += ": ";
    msg += list_.front();
    if (list_.size() > 1) {
        msg += " (+";
        msg += std::to_string(list_.size() - 1);
        msg += " more)";
    }
    std::string all;
    for (const auto& p : list_) {
        if (!all.empty()) all += "; ";
        all += p;
    }
    throw Error(code, std::move(msg), std::move(all));
}

} // namespace podfence
