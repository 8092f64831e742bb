package dev.memtube;

/** A live listener owns the address. */
public class AddressInUseException extends MemtubeException {
    private static final long serialVersionUID = 1L;

    public AddressInUseException(String message) {
        super(Status.ADDR_IN_USE, message);
    }

    AddressInUseException(Status status, String message) {
        super(status, message);
    }
}
