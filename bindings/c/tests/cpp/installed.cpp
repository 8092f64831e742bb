// memtube.hpp as installed by bindings/c/install.sh, built through pkg-config
// and run against the installed shared library (tests/c_abi.rs,
// install_pkg_config_and_shared_library). Prints the ABI version of the
// library loaded and whether it runs a program built against this header.
#include <memtube.hpp>

#include <cstdio>

int main() {
    uint32_t v = memtube_abi_version();
    bool ok = memtube::abi_compatible();
    std::printf("ABI %u.%u, %s\n", v >> 16, v & 0xffff, ok ? "compatible" : "incompatible");
    return ok ? 0 : 1;
}
