package io.vblk.nativetests;

import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;

/**
 * Checks for what a native test needs (a kernel feature, a peer binary). Normally an unmet
 * requirement skips the test; with {@code -Dvblk.requireNative=true} (CI on a capable host) it fails
 * it, so a native test can never pass silently by not running.
 */
public final class Requirements {
    private Requirements() {}

    public static void require(boolean condition, String why) {
        if (Boolean.getBoolean("vblk.requireNative")) {
            Assertions.assertTrue(condition, "required native capability missing: " + why);
        } else {
            Assumptions.assumeTrue(condition, why);
        }
    }
}
