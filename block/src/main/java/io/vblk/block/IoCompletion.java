package io.vblk.block;

/**
 * The completion of a request started without a coroutine ({@link BlockNode#startRw}): 0 or a
 * negative errno, on the I/O thread that started it, exactly once.
 */
@FunctionalInterface
public interface IoCompletion {
    void done(int ret);
}
