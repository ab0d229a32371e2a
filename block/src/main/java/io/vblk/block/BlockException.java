package io.vblk.block;

import java.io.IOException;

/**
 * A slow-path failure (open, create, probe, check) with the errno that caused it.
 * The message is one line meant for a user; the CLI prints it as is.
 */
public class BlockException extends IOException {
    private static final long serialVersionUID = 1L;
    private final int errno;

    public BlockException(int errno, String message) {
        super(message);
        this.errno = Math.abs(errno);
    }

    public BlockException(int errno, String message, Throwable cause) {
        super(message, cause);
        this.errno = Math.abs(errno);
    }

    /** Positive errno value (e.g. {@link Errno#EINVAL}). */
    public int errno() {
        return errno;
    }

    /** Throws a BlockException for a negative errno return, passes through non-negative values. */
    public static long check(long ret, String what) throws BlockException {
        if (ret < 0) {
            throw new BlockException((int) -ret, what + ": " + Errno.describe((int) -ret));
        }
        return ret;
    }
}
