package io.vblk.nativetests;

import org.junit.jupiter.api.Assumptions;

/**
 * Skips a native test whose prerequisite is missing, unless {@code -Dvblk.requireNative=true}, in
 * which case the test fails instead of silently passing.
 */
public final class Requirements {
    private Requirements() {}

    public static void require(boolean cond, String why) {
        if (cond) return;
        if (Boolean.getBoolean("vblk.requireNative")) {
            throw new AssertionError("required for this test: " + why);
        }
        Assumptions.assumeTrue(false, why);
    }
}
