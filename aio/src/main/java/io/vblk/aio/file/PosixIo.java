package io.vblk.aio.file;

import io.vblk.aio.Iocb;
import io.vblk.aio.LinuxConstants;
import io.vblk.aio.Native;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;

/**
 * Blocking read/write/sync calls run on {@link ThreadPoolIo} workers: QEMU's handle_aiocb_rw,
 * handle_aiocb_rw_linear and handle_aiocb_flush. Each loops over partial transfers and EINTR;
 * a read that hits end of file zero-fills the rest, a write that makes no progress is ENOSPC.
 * The iovec array is a per-worker-thread native buffer.
 */
final class PosixIo {
    private PosixIo() {}

    private static final ThreadLocal<NativeBuffer> IOV =
            ThreadLocal.withInitial(() -> NativeBuffer.allocate((long) LinuxConstants.UIO_MAXIOV * Iocb.IOVEC_SIZE, 64));

    /** Fills this thread's iovec array with bytes [off, off+bytes) of {@code q}; returns the count (at most UIO_MAXIOV). */
    private static int fill(long iov, IoVector q, long off, long bytes) {
        int n = q.count();
        int i = 0;
        while (i < n && off >= q.length(i)) {
            off -= q.length(i);
            i++;
        }
        int cnt = 0;
        while (bytes > 0 && i < n && cnt < LinuxConstants.UIO_MAXIOV) {
            long len = Math.min(q.length(i) - off, bytes);
            Iocb.putIovec(iov, cnt++, q.address(i) + off, len);
            bytes -= len;
            off = 0;
            i++;
        }
        return cnt;
    }

    /** preadv until {@code bytes} are read; zero-fills past end of file. 0 or -errno. */
    static int preadv(int fd, long offset, IoVector q, long qoff, long bytes) {
        long iov = IOV.get().address();
        long done = 0;
        while (done < bytes) {
            int cnt = fill(iov, q, qoff + done, bytes - done);
            long n = Native.ret(Native.LIBC.preadv(fd, iov, cnt, offset + done));
            if (n == -Errno.EINTR) {
                continue;
            }
            if (n < 0) {
                return (int) n;
            }
            if (n == 0) {
                q.memset(qoff + done, (byte) 0, bytes - done);
                return 0;
            }
            done += n;
        }
        return 0;
    }

    /** pwritev (pwritev2 with {@code rwFlags} when non-zero) until done; no progress is -ENOSPC. 0 or -errno. */
    static int pwritev(int fd, long offset, IoVector q, long qoff, long bytes, int rwFlags) {
        long iov = IOV.get().address();
        long done = 0;
        while (done < bytes) {
            int cnt = fill(iov, q, qoff + done, bytes - done);
            long n = rwFlags != 0
                    ? Native.ret(Native.LIBC.pwritev2(fd, iov, cnt, offset + done, rwFlags))
                    : Native.ret(Native.LIBC.pwritev(fd, iov, cnt, offset + done));
            if (n == -Errno.EINTR) {
                continue;
            }
            if (n < 0) {
                return (int) n;
            }
            if (n == 0) {
                return -Errno.ENOSPC;
            }
            done += n;
        }
        return 0;
    }

    /**
     * pread into {@code addr} until {@code len} bytes or end of file; returns the bytes read or
     * -errno. EINVAL after a partial O_DIRECT read means end of file (an unaligned file size).
     */
    static long pread(int fd, long addr, long len, long offset) {
        long done = 0;
        while (done < len) {
            long n = Native.ret(Native.LIBC.pread(fd, addr + done, len - done, offset + done));
            if (n == -Errno.EINTR) {
                continue;
            }
            if (n == -Errno.EINVAL && done > 0) {
                break;
            }
            if (n < 0) {
                return n;
            }
            if (n == 0) {
                break;
            }
            done += n;
        }
        return done;
    }

    /** pwrite from {@code addr} until done, with {@code rwFlags} (RWF_DSYNC) when non-zero. 0 or -errno. */
    static int pwrite(int fd, long addr, long len, long offset, int rwFlags) {
        long iov = IOV.get().address();
        long done = 0;
        while (done < len) {
            long n;
            if (rwFlags != 0) {
                Iocb.putIovec(iov, 0, addr + done, len - done);
                n = Native.ret(Native.LIBC.pwritev2(fd, iov, 1, offset + done, rwFlags));
            } else {
                n = Native.ret(Native.LIBC.pwrite(fd, addr + done, len - done, offset + done));
            }
            if (n == -Errno.EINTR) {
                continue;
            }
            if (n < 0) {
                return (int) n;
            }
            if (n == 0) {
                return -Errno.ENOSPC;
            }
            done += n;
        }
        return 0;
    }

    static int fdatasync(int fd) {
        for (;;) {
            int r = (int) Native.ret(Native.LIBC.fdatasync(fd));
            if (r != -Errno.EINTR) {
                return r;
            }
        }
    }

    static int fallocate(int fd, int mode, long offset, long len) {
        for (;;) {
            int r = (int) Native.ret(Native.LIBC.fallocate(fd, mode, offset, len));
            if (r != -Errno.EINTR) {
                return r;
            }
        }
    }

    static int ftruncate(int fd, long len) {
        return (int) Native.ret(Native.LIBC.ftruncate(fd, len));
    }

    /** BLKDISCARD / BLKZEROOUT over [offset, offset+len). 0 or -errno. */
    static int blockRangeIoctl(int fd, long request, long offset, long len) {
        try (NativeBuffer range = NativeBuffer.allocate(16, 8)) {
            io.vblk.block.NativeMemory.putLongLE(range.address(), offset);
            io.vblk.block.NativeMemory.putLongLE(range.address() + 8, len);
            return (int) Native.ret(Native.LIBC.ioctl(fd, request, range.address()));
        }
    }
}
