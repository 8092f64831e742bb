//! Names the shared library after the ABI's major version, read from
//! `src/version.rs` (the constant the library exports): the SONAME
//! `libmemtube.so.<major>` on Linux, the install name
//! `@rpath/libmemtube.<major>.dylib` on macOS. Programs linked against the
//! library then record that name, and `bindings/c/install.sh` installs the
//! library under it (with the `libmemtube.so` link for the linker).

#[allow(dead_code)]
mod version {
    include!("src/version.rs");
}

fn main() {
    println!("cargo:rerun-if-changed=src/version.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let major = version::MEMTUBE_ABI_VERSION_MAJOR;
    // The target's OS (the build script itself runs on the host).
    match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmemtube.so.{major}");
        }
        Ok("macos") => {
            println!(
                "cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libmemtube.{major}.dylib"
            );
        }
        _ => {}
    }
}
