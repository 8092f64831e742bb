// The ABI version, written in this one place. The crate exports it (and
// cbindgen writes it into memtube.h); build.rs includes this file to name
// the shared library after the major (SONAME `libmemtube.so.1`; on macOS
// the install name `@rpath/libmemtube.1.dylib`), and tests/c_abi.rs to
// check the installed library's names. Plain comments and no `use`: it is
// read with `include!`.

/// The ABI's major version: changes when anything is changed or removed.
pub const MEMTUBE_ABI_VERSION_MAJOR: u32 = 1;
/// The ABI's minor version: grows when functions, statuses or option
/// setters are added (nothing else changes in a minor).
pub const MEMTUBE_ABI_VERSION_MINOR: u32 = 2;
/// `major << 16 | minor`, as `memtube_abi_version()` returns it for the
/// library actually loaded. A program built against this header works with
/// a library of the same major and an equal or greater minor. Structs
/// (`memtube_message`, `memtube_grant`, ...) carry no size field: their
/// layout changes only with the major.
pub const MEMTUBE_ABI_VERSION: u32 = 0x0001_0002;

const _: () =
    assert!(MEMTUBE_ABI_VERSION == (MEMTUBE_ABI_VERSION_MAJOR << 16) | MEMTUBE_ABI_VERSION_MINOR);
