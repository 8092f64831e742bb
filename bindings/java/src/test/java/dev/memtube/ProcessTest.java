package dev.memtube;

import dev.memtube.TestRunner.Test;

public final class ProcessTest {
    @Test
    public void version() {
        assert Memtube.abiVersion() >>> 16 == 1;
    }
}
