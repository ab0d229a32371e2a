package io.vblk.nativetests;

import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;

/**
 * Guards for native and interop tests: a test whose peer or kernel feature is missing is skipped
 * normally, but fails when {@code -Dvblk.requireNative=true} (set by {@code ./test.sh} under
 * {@code .ci/run} with CI=true), so that CI never passes by skipping the real tests.
 */
public final class Requirements {
    private Requirements() {}

    /** True when skips must fail (CI). */
    public static boolean strict() {
        return "true".equals(System.getProperty("vblk.requireNative"));
    }

    /** Skips the test (or fails it under CI) unless {@code cond}; {@code why} says what is missing. */
    public static void require(boolean cond, String why) {
        if (cond) {
            return;
        }
        if (strict()) {
            Assertions.fail("required for this native/interop test (vblk.requireNative=true): " + why);
        }
        Assumptions.assumeTrue(false, why);
    }

    /** True when {@code program} is found on PATH (or is an absolute executable path). */
    public static boolean onPath(String program) {
        if (program.startsWith("/")) {
            return new java.io.File(program).canExecute();
        }
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String dir : path.split(":")) {
            if (new java.io.File(dir, program).canExecute()) {
                return true;
            }
        }
        return false;
    }
}
