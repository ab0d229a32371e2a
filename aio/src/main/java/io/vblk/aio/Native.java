package io.vblk.aio;

import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import jnr.ffi.LastError;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Platform;
import jnr.ffi.Runtime;

/**
 * The loaded {@link LibC} and errno handling. Every wrapper that turns a libc return value into a
 * vblk result goes through {@link #errno()} right after the call (errno is saved per thread).
 */
public final class Native {
    private Native() {}

    public static final LibC LIBC = LibraryLoader.create(LibC.class)
            .load(Platform.getNativePlatform().getStandardCLibraryName());
    public static final Runtime RUNTIME = Runtime.getRuntime(LIBC);

    /** errno of the last failed call on this thread (saved by jnr for {@code @SaveError} functions). */
    public static int errno() {
        return LastError.getLastError(RUNTIME);
    }

    /** Returns {@code ret}, or {@code -errno} when {@code ret == -1}: the kernel's own convention. */
    public static long ret(long ret) {
        return ret == -1 ? -errno() : ret;
    }

    /** Throws a {@link BlockException} naming the errno ("open(/x): ENOENT (No such file or directory)") if {@code ret == -1}. */
    public static long check(long ret, String what) throws BlockException {
        if (ret == -1) {
            int e = errno();
            throw new BlockException(e, what + ": " + Errno.describe(e));
        }
        return ret;
    }
}
