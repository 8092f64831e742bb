package dev.memtube;

import dev.memtube.TestRunner.Test;

public final class ApiTest {
    @Test
    public void version() {
        assert Memtube.abiVersion() >>> 16 == 1;
    }
}
