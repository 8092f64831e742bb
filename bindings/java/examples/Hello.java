// The README's example (run by ProcessTest.readmeExample): java Hello (receives), java Hello send.
import dev.memtube.*;
import java.nio.charset.StandardCharsets;

public class Hello {
    public static void main(String[] args) throws Exception {
        if (args.length > 0) { // the sender: another process
            try (Connection c = Memtube.connect("@memtube-java-hello")) {
                c.sender().send("hello".getBytes(StandardCharsets.UTF_8), 1);
            }                                                    // a clean close
            return;
        }
        try (Listener l = Memtube.listen("@memtube-java-hello"); Connection c = l.accept()) {
            Receiver rx = c.receiver();
            while (true) {
                try (Message m = rx.recv()) {                    // zero copy: a view of the ring
                    System.out.println(m.typeId() + ": " + StandardCharsets.UTF_8.decode(m.payload()));
                } catch (ClosedException e) {
                    break;                                       // the sender closed, all delivered
                }
            }
        }
    }
}
