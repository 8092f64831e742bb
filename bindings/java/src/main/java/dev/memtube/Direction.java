package dev.memtube;

/** Which side sends in a one-way connection (ignored in duplex mode). */
public enum Direction {
    /** The connecting process sends, the listener receives (the default). */
    CONNECTOR_TO_LISTENER,
    /** The listener sends, the connecting process receives. */
    LISTENER_TO_CONNECTOR
}
