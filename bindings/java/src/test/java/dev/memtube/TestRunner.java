package dev.memtube;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * A small test runner (no JUnit here: no Maven Central): runs every
 * {@link Test} method of the classes named on the command line (default:
 * all suites), each in a fresh instance, prints one line per test and exits
 * 1 when any failed. Run with {@code java -ea}: it refuses to run without
 * assertions. {@code -Dtest=NAME} runs only tests whose name contains NAME.
 */
public final class TestRunner {
    @Retention(RetentionPolicy.RUNTIME)
    @Target(ElementType.METHOD)
    public @interface Test {}

    /** Thrown by a test that cannot run here (printed as SKIP, never counted as a pass). */
    public static final class Skip extends RuntimeException {
        private static final long serialVersionUID = 1L;

        public Skip(String why) {
            super(why);
        }
    }

    static final String[] SUITES = {"dev.memtube.ApiTest", "dev.memtube.SendRecvTest", "dev.memtube.ProcessTest",
            "dev.memtube.ReviewFixTest"};

    public static void main(String[] args) throws Exception {
        boolean ea = false;
        assert ea = true;
        if (!ea) {
            System.err.println("run with java -ea");
            System.exit(2);
        }
        String filter = System.getProperty("test", "");
        int pass = 0, fail = 0, skip = 0;
        List<String> failed = new ArrayList<>();
        for (String name : args.length > 0 ? args : SUITES) {
            Class<?> c = Class.forName(name);
            Method[] ms = c.getDeclaredMethods();
            Arrays.sort(ms, Comparator.comparing(Method::getName));
            for (Method m : ms) {
                if (!m.isAnnotationPresent(Test.class) || !m.getName().contains(filter)) continue;
                String id = c.getSimpleName() + "." + m.getName();
                long t0 = System.nanoTime();
                try {
                    Object o = c.getDeclaredConstructor().newInstance();
                    m.invoke(o);
                    pass++;
                    System.out.printf("PASS %s (%d ms)%n", id, (System.nanoTime() - t0) / 1_000_000);
                } catch (InvocationTargetException e) {
                    Throwable t = e.getCause();
                    if (t instanceof Skip) {
                        skip++;
                        System.out.printf("SKIP %s: %s%n", id, t.getMessage());
                    } else {
                        fail++;
                        failed.add(id);
                        System.out.printf("FAIL %s%n", id);
                        t.printStackTrace(System.out);
                    }
                }
                System.out.flush();
            }
        }
        System.out.printf("%d passed, %d failed, %d skipped%n", pass, fail, skip);
        if (!failed.isEmpty()) System.out.println("failed: " + failed);
        System.exit(fail == 0 && pass > 0 ? 0 : 1);
    }
}
