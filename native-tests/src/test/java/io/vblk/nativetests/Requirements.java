package io.vblk.nativetests;

import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;

/**
 * Skip-or-fail for tests that need something from the machine (root, loop devices, a peer tool).
 * Normally an unmet requirement skips the test; with {@code -Dvblk.requireNative=true} (CI) it
 * fails, so a native test can never pass by silently not running.
 */
public final class Requirements {
    private Requirements() {}

    public static final boolean STRICT = Boolean.getBoolean("vblk.requireNative");

    /** Skips (or, when strict, fails) the current test unless {@code condition} holds. */
    public static void require(boolean condition, String why) {
        if (STRICT) {
            Assertions.assertTrue(condition, "required (vblk.requireNative=true): " + why);
        } else {
            Assumptions.assumeTrue(condition, why);
        }
    }

    /** True when {@code program} is an executable on PATH (or an absolute path to one). */
    public static boolean onPath(String program) {
        if (program.startsWith("/")) {
            return new java.io.File(program).canExecute();
        }
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            if (new java.io.File(dir, program).canExecute()) {
                return true;
            }
        }
        return false;
    }
}
