//! `include/memtube.h` is what cbindgen generates from the crate today.
//! `MEMTUBE_BLESS=1 cargo test -p memtube-ffi --test header` rewrites it.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = dir.join("include/memtube.h");
    if std::env::var_os("MEMTUBE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("write include/memtube.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed != fresh {
        let fresh_path = std::env::temp_dir().join(format!("memtube-{}.h", std::process::id()));
        let _ = std::fs::write(&fresh_path, &fresh);
        panic!(
            "{} is out of date: a fresh generation is in {}; run \
             `MEMTUBE_BLESS=1 cargo test -p memtube-ffi --test header` and commit the result",
            path.display(),
            fresh_path.display()
        );
    }
}
