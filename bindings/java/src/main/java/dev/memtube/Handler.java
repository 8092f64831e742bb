package dev.memtube;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A request handler for {@link Connection#serve} and {@link Connection#serveOne}.
 */
@FunctionalInterface
public interface Handler {
    /**
     * Answer one request.
     *
     * @param typeId the request's type id (unsigned)
     * @param request the request body in place in the ring: a read-only
     *     direct buffer valid only during this call (do not keep it)
     * @param reply the reply to fill, valid only during this call
     * @return the reply's type id ({@code -1}, i.e. 0xFFFFFFFF, is reserved)
     * @throws IOException (or any exception) ends the serve call with it; the
     *     caller of this request gets a {@link ProtocolException}
     */
    int handle(int typeId, ByteBuffer request, Reply reply) throws IOException;
}
