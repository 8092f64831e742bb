package dev.memtube;

/**
 * The peer's process credentials, as the kernel recorded them when the
 * connection was made.
 *
 * @param pid process id
 * @param uid user id (unsigned)
 * @param gid group id (unsigned)
 */
public record PeerCred(int pid, int uid, int gid) {}
