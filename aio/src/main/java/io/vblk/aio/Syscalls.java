package io.vblk.aio;

import java.util.Locale;

/**
 * Syscall numbers and the flags that differ per architecture (x86_64 and aarch64), in one place.
 * Sources: Linux {@code arch/x86/entry/syscalls/syscall_64.tbl} and asm-generic {@code unistd.h};
 * O_DIRECT from the per-arch {@code fcntl.h}.
 */
public final class Syscalls {
    private Syscalls() {}

    public static final String ARCH = System.getProperty("os.arch").toLowerCase(Locale.ROOT);
    public static final boolean AARCH64 = ARCH.equals("aarch64") || ARCH.equals("arm64");
    public static final boolean X86_64 = ARCH.equals("amd64") || ARCH.equals("x86_64");

    static {
        if (!AARCH64 && !X86_64) {
            throw new ExceptionInInitializerError("vblk supports x86_64 and aarch64 Linux, not " + ARCH);
        }
    }

    public static final long IO_SETUP = X86_64 ? 206 : 0;
    public static final long IO_DESTROY = X86_64 ? 207 : 1;
    public static final long IO_SUBMIT = X86_64 ? 209 : 2;
    public static final long IO_CANCEL = X86_64 ? 210 : 3;
    public static final long IO_GETEVENTS = X86_64 ? 208 : 4;
    public static final long EVENTFD2 = X86_64 ? 290 : 19;
    public static final long FDATASYNC = X86_64 ? 75 : 83;
    public static final long FALLOCATE = X86_64 ? 285 : 47;
    public static final long PREADV2 = X86_64 ? 327 : 286;
    public static final long PWRITEV2 = X86_64 ? 328 : 287;
    public static final long MEMFD_CREATE = X86_64 ? 319 : 279;
    public static final long EPOLL_PWAIT2 = 441; // the same on both (Linux 5.11)

    // ---- open(2) flags
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_CREAT = 0x40;
    public static final int O_EXCL = 0x80;
    public static final int O_TRUNC = 0x200;
    public static final int O_APPEND = 0x400;
    public static final int O_NONBLOCK = 0x800;
    public static final int O_DSYNC = 0x1000;
    public static final int O_DIRECT = X86_64 ? 0x4000 : 0x10000;
    public static final int O_DIRECTORY = X86_64 ? 0x10000 : 0x4000;
    public static final int O_CLOEXEC = 0x80000;
}
