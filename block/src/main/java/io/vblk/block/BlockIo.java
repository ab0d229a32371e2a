package io.vblk.block;

/**
 * The generic request path: QEMU's block/io.c. Every request on a {@link BlockNode} passes here
 * before its driver sees it.
 *
 * <p>FIRST CUT: byte-request checks, in-flight counting, drain, flush generations, and a direct
 * pass-through. Tracked requests, serialising, RMW, zero-write fallback, fragmentation and FUA
 * emulation are still to come (issue 3).
 */
final class BlockIo {
    private BlockIo() {}

    /** Largest request the block layer accepts (BDRV_REQUEST_MAX_BYTES). */
    static final long REQUEST_MAX_BYTES = Math.min(Integer.MAX_VALUE & ~511L, 1L << 62);

    /** bdrv_check_request: negative or overflowing requests are EIO/EINVAL. */
    static int checkRequest(long offset, long bytes) {
        if (offset < 0 || bytes < 0) {
            return -Errno.EIO;
        }
        if (bytes > (1L << 62) || offset > (1L << 62) - bytes) {
            return -Errno.EIO;
        }
        return 0;
    }

    static int preadv(BlockNode bs, long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        int ret = checkRequest(offset, bytes);
        if (ret < 0) return ret;
        if (qiov != null && qiovOffset + bytes > qiov.size()) return -Errno.EINVAL;
        incInFlight(bs);
        try {
            return bs.driver.coPreadv(offset, bytes, qiov, qiovOffset, flags);
        } finally {
            decInFlight(bs);
        }
    }

    static int pwritev(BlockNode bs, long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        int ret = checkRequest(offset, bytes);
        if (ret < 0) return ret;
        if (bs.readOnly) return -Errno.EPERM;
        if (qiov != null && qiovOffset + bytes > qiov.size()) return -Errno.EINVAL;
        incInFlight(bs);
        try {
            ret = bs.driver.coPwritev(offset, bytes, qiov, qiovOffset, flags & bs.driver.supportedWriteFlags());
            if (ret >= 0 && (flags & RequestFlags.FUA) != 0 && (bs.driver.supportedWriteFlags() & RequestFlags.FUA) == 0) {
                ret = flush(bs);
            }
            afterWrite(bs, offset, bytes, ret);
            return ret;
        } finally {
            decInFlight(bs);
        }
    }

    static int pwriteZeroes(BlockNode bs, long offset, long bytes, int flags) {
        int ret = checkRequest(offset, bytes);
        if (ret < 0) return ret;
        if (bs.readOnly) return -Errno.EPERM;
        incInFlight(bs);
        try {
            ret = bs.driver.coPwriteZeroes(offset, bytes, flags);
            afterWrite(bs, offset, bytes, ret);
            return ret;
        } finally {
            decInFlight(bs);
        }
    }

    static int pdiscard(BlockNode bs, long offset, long bytes) {
        int ret = checkRequest(offset, bytes);
        if (ret < 0) return ret;
        if (bs.readOnly) return -Errno.EPERM;
        incInFlight(bs);
        try {
            ret = bs.driver.coPdiscard(offset, bytes);
            if (ret == -Errno.ENOTSUP) ret = 0;
            afterWrite(bs, offset, bytes, ret);
            return ret;
        } finally {
            decInFlight(bs);
        }
    }

    private static void afterWrite(BlockNode bs, long offset, long bytes, int ret) {
        bs.writeGen.incrementAndGet();
        if (ret >= 0) {
            for (DirtyBitmap b : bs.dirtyBitmaps) {
                b.setDirty(offset, bytes);
            }
            bs.wrHighestOffset.accumulateAndGet(offset + bytes, Math::max);
        }
    }

    /** bdrv_co_flush with write/flush generations; one active flush, later ones wait. */
    static int flush(BlockNode bs) {
        incInFlight(bs);
        try {
            bs.flushLock.lock();
            long currentGen = bs.writeGen.get();
            while (bs.activeFlush) {
                bs.flushQueue.await(bs.flushLock);
            }
            if (bs.flushedGen == currentGen) {
                bs.flushLock.unlock();
                return 0;
            }
            bs.activeFlush = true;
            bs.flushLock.unlock();

            int ret = bs.driver.coFlushToOs();
            if (ret >= 0 && !bs.noFlush) {
                if (bs.driver.hasFlushToDisk()) {
                    ret = bs.driver.coFlushToDisk();
                }
            }
            if (ret >= 0) {
                BlockChild f = bs.file();
                if (f != null) {
                    ret = f.node().flush();
                }
            }
            bs.flushLock.lock();
            if (ret >= 0) {
                bs.flushedGen = currentGen;
            }
            bs.activeFlush = false;
            bs.flushQueue.wakeNext();
            bs.flushLock.unlock();
            return ret;
        } finally {
            decInFlight(bs);
        }
    }

    static long getLength(BlockNode bs) {
        return bs.driver.getLength();
    }

    static int truncate(BlockNode bs, long offset, boolean exact, PreallocMode prealloc, int flags) {
        if (bs.readOnly) return -Errno.EACCES;
        if (offset < 0) return -Errno.EINVAL;
        incInFlight(bs);
        try {
            int ret = bs.driver.coTruncate(offset, exact, prealloc, flags);
            bs.writeGen.incrementAndGet();
            return ret;
        } finally {
            decInFlight(bs);
        }
    }

    static int blockStatus(BlockNode bs, boolean wantZero, long offset, long bytes, BlockStatus out) {
        long len = bs.driver.getLength();
        if (len < 0) return (int) len;
        if (offset >= len) {
            out.set(BlockStatus.EOF, 0, 0, null);
            return 0;
        }
        bytes = Math.min(bytes, len - offset);
        return bs.driver.coBlockStatus(wantZero, offset, bytes, out);
    }

    static void incInFlight(BlockNode bs) {
        bs.inFlight.incrementAndGet();
    }

    static void decInFlight(BlockNode bs) {
        if (bs.inFlight.decrementAndGet() == 0) {
            bs.drainWaiters.wakeAll();
        }
    }

    static void drainBegin(BlockNode bs) {
        bs.quiesceCounter.incrementAndGet();
        while (bs.inFlight.get() > 0) {
            if (Coroutine.inCoroutine()) {
                bs.drainWaiters.await();
            } else {
                Thread.onSpinWait();
            }
        }
        for (BlockChild c : bs.children()) {
            c.node().drainBegin();
        }
    }

    static void drainEnd(BlockNode bs) {
        for (BlockChild c : bs.children()) {
            c.node().drainEnd();
        }
        bs.quiesceCounter.decrementAndGet();
    }
}
