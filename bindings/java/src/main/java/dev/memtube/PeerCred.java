package dev.memtube;

/**
 * The peer's process credentials, as the kernel recorded them when the
 * connection was made.
 *
 * @param pid process id
 * @param uid user id: the C {@code uint32_t}'s bits (read it with {@link Integer#toUnsignedLong})
 * @param gid group id: as {@code uid}
 */
public record PeerCred(int pid, int uid, int gid) {}
