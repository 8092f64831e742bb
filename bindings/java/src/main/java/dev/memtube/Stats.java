package dev.memtube;

/**
 * A ring's counters, read field by field while the ring runs: they may be
 * slightly inconsistent or lag by one batch.
 *
 * @param messagesCommitted messages the producer published
 * @param bytesCommitted payload bytes the producer published
 * @param fullEvents times a reservation found the ring full on its first try
 * @param producerWakes wake calls the producer made
 * @param messagesReleased messages the consumer released
 * @param bytesReleased payload bytes the consumer released
 * @param consumerWakes wake calls the consumer made
 */
public record Stats(long messagesCommitted, long bytesCommitted, long fullEvents, long producerWakes,
        long messagesReleased, long bytesReleased, long consumerWakes) {
    static Stats of(long[] v) {
        return new Stats(v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    }
}
