package io.vblk.block.drivers;

import io.vblk.block.BlockNode;
import io.vblk.block.CoMutex;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import java.util.Arrays;
import java.util.TreeMap;

/**
 * The power-loss model of the {@code debug} driver ({@code power-loss=on}): an overlay of
 * 4 KiB pages holding every write that has not been flushed yet. Writes land in the overlay (a
 * partly written page is first filled from the node below), reads see the overlay over the node
 * below, a flush ({@link #commit}) writes the pages down in offset order and drops them, and
 * {@link #crash} drops them without writing: afterwards the node below holds exactly what was
 * flushed, as a disk does after a power cut.
 *
 * <p>All methods run in a coroutine: the overlay is guarded by a {@link CoMutex} that is held
 * across the I/O to the node below, so overlay operations are atomic with respect to each other.
 */
final class UnflushedWrites {
    static final int PAGE = 4096;

    private final BlockNode below;
    private final CoMutex mutex = new CoMutex();
    private final TreeMap<Long, byte[]> pages = new TreeMap<>();   // page index -> data; guarded by mutex (crash: by this)
    private final NativeBuffer scratch = NativeBuffer.allocate(PAGE, 4096); // guarded by mutex
    private final IoVector scratchVec = IoVector.of(scratch.address(), PAGE); // guarded by mutex
    private long writtenEnd;   // end of the highest pending write (may lie past the node below); guarded by this

    UnflushedWrites(BlockNode below) {
        this.below = below;
    }

    int read(long offset, long bytes, IoVector qiov, long qiovOffset) {
        mutex.lock();
        try {
            long pos = offset;
            long end = offset + bytes;
            while (pos < end) {
                long idx = pos / PAGE;
                int inPage = (int) (pos % PAGE);
                long n = Math.min(PAGE - inPage, end - pos);
                byte[] p = page(idx);
                if (p != null) {
                    qiov.copyFromArray(qiovOffset + (pos - offset), p, inPage, (int) n);
                } else {
                    long runEnd = pos + n;
                    while (runEnd < end && page(runEnd / PAGE) == null) {
                        runEnd = Math.min(end, runEnd + PAGE);
                    }
                    n = runEnd - pos;
                    int r = below.preadv(pos, n, qiov, qiovOffset + (pos - offset), 0);
                    if (r < 0) {
                        return r;
                    }
                }
                pos += n;
            }
            return 0;
        } finally {
            mutex.unlock();
        }
    }

    /** Records a write; {@code qiov == null} writes zeros. */
    int write(long offset, long bytes, IoVector qiov, long qiovOffset) {
        mutex.lock();
        try {
            synchronized (this) {
                writtenEnd = Math.max(writtenEnd, offset + bytes);
            }
            long pos = offset;
            long end = offset + bytes;
            while (pos < end) {
                long idx = pos / PAGE;
                int inPage = (int) (pos % PAGE);
                int n = (int) Math.min(PAGE - inPage, end - pos);
                byte[] p = page(idx);
                if (p == null) {
                    p = new byte[PAGE];
                    if (n != PAGE) {
                        int r = load(idx, p);
                        if (r < 0) {
                            return r;
                        }
                    }
                    synchronized (this) {
                        pages.put(idx, p);
                    }
                }
                if (qiov != null) {
                    qiov.copyToArray(qiovOffset + (pos - offset), p, inPage, n);
                } else {
                    Arrays.fill(p, inPage, inPage + n, (byte) 0);
                }
                pos += n;
            }
            return 0;
        } finally {
            mutex.unlock();
        }
    }

    private int load(long idx, byte[] p) {
        long len = below.getLength();
        if (len < 0) {
            return (int) len;
        }
        long off = idx * PAGE;
        long n = Math.max(0, Math.min(PAGE, len - off));
        if (n > 0) {
            int r = below.preadv(off, PAGE, scratchVec, 0, 0);
            if (r < 0) {
                return r;
            }
            scratch.copyTo(0, p, 0, (int) n);
        }
        return 0;
    }

    /** Writes every pending page to the node below, in offset order (the flush of the power-loss model). */
    int commit() {
        mutex.lock();
        try {
            long below_len = below.getLength();
            if (below_len < 0) {
                return (int) below_len;
            }
            // a pending write may have grown the file: commit up to its end, not the old length
            long len = Math.max(below_len, pendingEnd());
            for (;;) {
                java.util.Map.Entry<Long, byte[]> e;
                synchronized (this) {
                    e = pages.firstEntry();
                }
                if (e == null) {
                    synchronized (this) {
                        writtenEnd = 0;
                    }
                    return 0;
                }
                long off = e.getKey() * PAGE;
                long n = Math.max(0, Math.min(PAGE, len - off));
                if (n > 0) {
                    scratch.copyFrom(e.getValue(), 0, 0, (int) n);
                    int r = below.pwritev(off, n, scratchVec, 0, 0);
                    if (r < 0) {
                        return r;     // pages from here on stay pending
                    }
                }
                synchronized (this) {
                    pages.remove(e.getKey());
                }
            }
        } finally {
            mutex.unlock();
        }
    }

    /** Drops every write that was not flushed (the power cut). Any thread; call it while the node is idle. */
    synchronized int crash() {
        int n = pages.size();
        pages.clear();
        writtenEnd = 0;
        return n;
    }

    /** End of the highest write not yet flushed, or 0 (the length the node shows while writes are pending). */
    synchronized long pendingEnd() {
        return pages.isEmpty() ? 0 : writtenEnd;
    }

    synchronized int pendingPages() {
        return pages.size();
    }

    private synchronized byte[] page(long idx) {
        return pages.get(idx);
    }

    void close() {
        scratch.close();
    }
}
