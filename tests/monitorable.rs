//! `Options::monitorable`: a test binary of its own, because it counts this
//! process's descriptors, which tests running beside it would change.
#![cfg(target_os = "linux")]

/// A connection keeps a descriptor of each of its regions open for monitors
/// unless told not to (`Options::monitorable(false)`): with isolation, two
/// per ring on each side.
#[test]
fn monitorable_connections_keep_their_region_descriptors() {
    fn fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }
    let mut counts = Vec::new();
    for monitorable in [true, false] {
        let opts = memtube::Options::new()
            .duplex(true)
            .capacity(4096)
            .monitorable(monitorable);
        let addr = format!(
            "@memtube-test-monitorable-{}-{monitorable}",
            std::process::id()
        );
        let listener = memtube::listen(addr.as_str(), &opts).unwrap();
        let before = fds();
        let a = addr.clone();
        let o = opts.clone();
        let client = std::thread::spawn(move || memtube::connect(a.as_str(), &o).unwrap());
        let server = listener
            .accept_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let client = client.join().unwrap();
        counts.push(fds() - before);
        drop((server, client));
    }
    // Each side: a socket and a pidfd; plus, when monitorable, 2 rings x 2
    // regions on each side.
    assert_eq!(counts[0] - counts[1], 8, "{counts:?}");
}
