package io.vblk.aio;

import io.vblk.block.Coroutine;
import io.vblk.block.IoCompletion;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;

/**
 * One pooled Linux AIO request: QEMU's qemu_laiocb. It owns a 64-byte iocb slot and an iovec
 * array in native memory that never move, so the kernel may read them after io_submit returns;
 * {@link LinuxAio} reuses it for request after request. Its {@link #id} goes into
 * {@code aio_data} and maps a completion back here. Context thread only.
 */
final class AioRequest {
    static final int INITIAL_IOV = 16;

    final int id;
    private NativeBuffer mem;      // iocb at 0, iovec array at 64
    long iocb;
    long iov;
    int iovCap;

    // the request in progress
    Coroutine co;                  // woken at completion, or
    IoCompletion done;             // called (by deliverTask) at completion
    Runnable deliverTask;          // LinuxAio's, made once per request object
    IoVector qiov;                 // null for flushes
    long qiovOffset;
    long nbytes;
    boolean isRead;
    int ret;                       // -EINPROGRESS until completed
    AioRequest next;               // pending FIFO / free list link

    AioRequest(int id) {
        this.id = id;
        allocate(INITIAL_IOV);
    }

    private void allocate(int iovs) {
        NativeBuffer old = mem;
        mem = NativeBuffer.allocate(Iocb.SIZE + (long) iovs * Iocb.IOVEC_SIZE, 64);
        iocb = mem.address();
        iov = iocb + Iocb.SIZE;
        iovCap = iovs;
        if (old != null) {
            old.close();
        }
    }

    /**
     * Writes the iovec array for bytes [off, off+bytes) of {@code q}. Returns the iovec count, or
     * -1 if it exceeds UIO_MAXIOV. Grows the array on first need only (never in the steady state).
     */
    int fillIov(IoVector q, long off, long bytes) {
        int n = q.count();
        int i = 0;
        while (i < n && off >= q.length(i)) {
            off -= q.length(i);
            i++;
        }
        int cnt = 0;
        while (bytes > 0 && i < n) {
            long len = Math.min(q.length(i) - off, bytes);
            if (cnt == iovCap) {
                if (cnt >= LinuxConstants.UIO_MAXIOV) {
                    return -1;
                }
                grow();
            }
            Iocb.putIovec(iov, cnt++, q.address(i) + off, len);
            bytes -= len;
            off = 0;
            i++;
        }
        return cnt;
    }

    private void grow() {
        int cap = Math.min(iovCap * 4, LinuxConstants.UIO_MAXIOV);
        NativeBuffer old = mem;
        NativeBuffer m = NativeBuffer.allocate(Iocb.SIZE + (long) cap * Iocb.IOVEC_SIZE, 64);
        io.vblk.block.NativeMemory.copy(old.address(), m.address(), Iocb.SIZE + (long) iovCap * Iocb.IOVEC_SIZE);
        mem = m;
        iocb = m.address();
        iov = iocb + Iocb.SIZE;
        iovCap = cap;
        old.close();
    }

    void clear() {
        co = null;
        done = null;
        qiov = null;
        next = null;
    }

    void free() {
        mem.close();
    }
}
