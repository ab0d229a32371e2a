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

    /**
     * Six syscall arguments; pass 0 for those a call does not use. (There is deliberately no
     * five-argument form: with jnr-ffi 2.3.7 on x86_64 a fixed {@code syscall(nr, a0..a4)} did not
     * deliver {@code a4} to the kernel; an io_getevents with min_nr=1 and a 300 ms timeout waited
     * forever, and epoll_pwait2 answered EINVAL. This form delivers all six: {@code HotSyscallsTest}.)
     */
    @SaveError long syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

    HotSyscalls INSTANCE = LibraryLoader.create(HotSyscalls.class)
            .load(Platform.getNativePlatform().getStandardCLibraryName());
}
