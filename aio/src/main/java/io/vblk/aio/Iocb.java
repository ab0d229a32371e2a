package io.vblk.aio;

import io.vblk.block.NativeMemory;

/**
 * The kernel's {@code struct iocb}, {@code struct iovec} and {@code struct io_event} as offsets,
 * plus writers that fill a 64-byte iocb slot in native memory in place (libaio's io_prep_*, done
 * by hand). Little-endian layout of {@code include/uapi/linux/aio_abi.h}; no jnr Struct.
 */
public final class Iocb {
    private Iocb() {}

    public static final int SIZE = 64;
    public static final int AIO_DATA = 0;
    public static final int AIO_KEY = 8;
    public static final int AIO_RW_FLAGS = 12;
    public static final int AIO_LIO_OPCODE = 16;
    public static final int AIO_REQPRIO = 18;
    public static final int AIO_FILDES = 20;
    public static final int AIO_BUF = 24;
    public static final int AIO_NBYTES = 32;
    public static final int AIO_OFFSET = 40;
    public static final int AIO_RESERVED2 = 48;
    public static final int AIO_FLAGS = 56;
    public static final int AIO_RESFD = 60;

    public static final int IOVEC_SIZE = 16;
    public static final int IOVEC_BASE = 0;
    public static final int IOVEC_LEN = 8;

    public static final int EVENT_SIZE = 32;
    public static final int EVENT_DATA = 0;
    public static final int EVENT_OBJ = 8;
    public static final int EVENT_RES = 16;
    public static final int EVENT_RES2 = 24;

    /** Fills a PREADV/PWRITEV iocb over an iovec array, completing into eventfd {@code resfd} (io_prep_preadv + io_set_eventfd). */
    public static void prepVector(long iocb, int opcode, int fd, long iov, int iovcnt, long offset, int rwFlags,
            int resfd, long data) {
        NativeMemory.putLongLE(iocb + AIO_DATA, data);
        NativeMemory.putIntLE(iocb + AIO_KEY, 0);
        NativeMemory.putIntLE(iocb + AIO_RW_FLAGS, rwFlags);
        NativeMemory.putShortLE(iocb + AIO_LIO_OPCODE, (short) opcode);
        NativeMemory.putShortLE(iocb + AIO_REQPRIO, (short) 0);
        NativeMemory.putIntLE(iocb + AIO_FILDES, fd);
        NativeMemory.putLongLE(iocb + AIO_BUF, iov);
        NativeMemory.putLongLE(iocb + AIO_NBYTES, iovcnt);
        NativeMemory.putLongLE(iocb + AIO_OFFSET, offset);
        NativeMemory.putLongLE(iocb + AIO_RESERVED2, 0);
        NativeMemory.putIntLE(iocb + AIO_FLAGS, resfd >= 0 ? LinuxConstants.IOCB_FLAG_RESFD : 0);
        NativeMemory.putIntLE(iocb + AIO_RESFD, resfd >= 0 ? resfd : 0);
    }

    /** Fills an FSYNC/FDSYNC iocb: buffer, count, offset and rw flags must be zero. */
    public static void prepSync(long iocb, int opcode, int fd, int resfd, long data) {
        prepVector(iocb, opcode, fd, 0, 0, 0, 0, resfd, data);
    }

    public static void putIovec(long iovArray, int index, long base, long len) {
        long e = iovArray + (long) index * IOVEC_SIZE;
        NativeMemory.putLongLE(e + IOVEC_BASE, base);
        NativeMemory.putLongLE(e + IOVEC_LEN, len);
    }
}
