// What this binary was built from (stamped at build time by cmake/build_info.cmake):
// `orderflow --version` and the `orderflow_build_info` metric print it. Defined in the generated
// library orderflow_build_info (CMakeLists.txt), which only the API and the command line link.
#pragma once

#include <string_view>

namespace orderflow::build_info {

extern const std::string_view version;       // the project's version: "0.1.0"
extern const std::string_view git_describe;  // `git describe --tags --always --dirty`: "6be757d-dirty"
extern const std::string_view build_type;    // CMAKE_BUILD_TYPE: "RelWithDebInfo"

}  // namespace orderflow::build_info
