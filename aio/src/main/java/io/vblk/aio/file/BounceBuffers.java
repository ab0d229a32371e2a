package io.vblk.aio.file;

import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;

/**
 * The misaligned-request path of O_DIRECT files (QEMU's QEMU_AIO_MISALIGNED handling in
 * handle_aiocb_rw): copy through one aligned buffer so the kernel never sees a misaligned address,
 * length or offset, and the caller never gets EINVAL. Offsets and lengths that are not multiples
 * of the request alignment are widened to whole blocks; a write then first reads the partial head
 * and tail blocks (read-modify-write; the block layer serialises overlapping requests).
 * Runs on a {@link ThreadPoolIo} worker.
 */
final class BounceBuffers {
    private BounceBuffers() {}

    static boolean isAligned(long offset, long bytes, IoVector q, long qoff, int reqAlign, int bufAlign) {
        if (reqAlign <= 1 && bufAlign <= 1) {
            return true;
        }
        if (offset % reqAlign != 0 || bytes % reqAlign != 0) {
            return false;
        }
        int n = q.count();
        int i = 0;
        long off = qoff;
        while (i < n && off >= q.length(i)) {
            off -= q.length(i);
            i++;
        }
        long left = bytes;
        while (left > 0 && i < n) {
            long addr = q.address(i) + off;
            long len = Math.min(q.length(i) - off, left);
            if ((addr & (bufAlign - 1)) != 0 || len % reqAlign != 0) {
                return false;
            }
            left -= len;
            off = 0;
            i++;
        }
        return true;
    }

    static int read(int fd, long offset, long bytes, IoVector q, long qoff, int reqAlign, int bufAlign) {
        long a0 = Math.floorDiv(offset, reqAlign) * reqAlign;
        long a1 = ceil(offset + bytes, reqAlign);
        try (NativeBuffer buf = NativeBuffer.allocate(a1 - a0, Math.max(4096, Math.max(reqAlign, bufAlign)))) {
            long n = PosixIo.pread(fd, buf.address(), a1 - a0, a0);
            if (n < 0) {
                return (int) n;
            }
            // bytes past end of file read as zeros (the buffer starts zeroed)
            q.copyFromAddress(qoff, buf.address() + (offset - a0), bytes);
            return 0;
        }
    }

    static int write(int fd, long offset, long bytes, IoVector q, long qoff, int reqAlign, int bufAlign, int rwFlags) {
        long a0 = Math.floorDiv(offset, reqAlign) * reqAlign;
        long a1 = ceil(offset + bytes, reqAlign);
        try (NativeBuffer buf = NativeBuffer.allocate(a1 - a0, Math.max(4096, Math.max(reqAlign, bufAlign)))) {
            long b = buf.address();
            if (offset != a0) {
                long n = PosixIo.pread(fd, b, reqAlign, a0);
                if (n < 0) {
                    return (int) n;
                }
            }
            if (offset + bytes != a1 && (a1 - reqAlign >= a0 + reqAlign || offset == a0)) {
                long n = PosixIo.pread(fd, b + (a1 - reqAlign - a0), reqAlign, a1 - reqAlign);
                if (n < 0) {
                    return (int) n;
                }
            }
            q.copyToAddress(qoff, b + (offset - a0), bytes);
            return PosixIo.pwrite(fd, b, a1 - a0, a0, rwFlags);
        }
    }

    private static long ceil(long v, long a) {
        return Math.floorDiv(v + a - 1, a) * a;
    }
}
