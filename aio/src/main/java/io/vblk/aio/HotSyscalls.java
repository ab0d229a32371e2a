package io.vblk.aio;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Platform;
import jnr.ffi.annotations.SaveError;

/**
 * {@code syscall(2)} bound without {@code @Variadic}, for the per-request calls of the AIO engine
 * (io_submit, io_getevents). jnr-ffi invokes variadic functions through its reflective fallback,
 * which boxes every argument and allocates an invocation buffer per call; a fixed signature gets a
 * generated, allocation-free stub. Calling glibc's {@code syscall} with a fixed signature is sound
 * on x86_64 and aarch64 Linux: integer arguments travel in the same registers either way, and
 * glibc's assembly wrapper never reads the variadic register count.
 */
public interface HotSyscalls {
    @SaveError long syscall(long nr, long a0, long a1, long a2);

    @SaveError long syscall(long nr, long a0, long a1, long a2, long a3, long a4);

    HotSyscalls INSTANCE = LibraryLoader.create(HotSyscalls.class)
            .load(Platform.getNativePlatform().getStandardCLibraryName());
}
