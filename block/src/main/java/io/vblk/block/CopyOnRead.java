package io.vblk.block;

/**
 * Copy-on-read: QEMU's bdrv_co_do_copy_on_readv. When a read (with
 * {@link RequestFlags#COPY_ON_READ}, or on a node opened with {@code copy-on-read=on}) touches
 * ranges this node does not allocate itself (its driver reads them from the backing chain), the
 * whole clusters are read, written back into this node unchanged, and the caller's part is copied
 * out. The request is serialising over the clusters, so a guest write cannot slip in between the
 * read and the write-back. Slow path: allocates its bounce buffer and status holder.
 */
final class CopyOnRead {
    private CopyOnRead() {}

    /** Returned when the range is allocated here and a plain read should follow. */
    static final int ALLOCATED = 1;

    /** Largest chunk copied at a time (QEMU uses MAX_BOUNCE_BUFFER; one MiB keeps the buffer small). */
    private static final long CHUNK = 1 << 20;

    /**
     * Returns {@link #ALLOCATED} if {@code [offset, offset+bytes)} is allocated in this node (or
     * reaches past its end, which the plain read zero-fills), else performs the COR read and
     * returns 0 or a negative errno.
     */
    static int readIfUnallocated(BlockNode bs, TrackedRequest req, long offset, long bytes, IoVector qiov, long qiovOffset) {
        long len = BlockIo.getLength(bs);
        if (len < 0) {
            return (int) len;
        }
        if (offset + bytes > len) {
            return ALLOCATED;
        }
        BlockStatus st = new BlockStatus();
        long pos = offset;
        long end = offset + bytes;
        while (pos < end) {
            int r = bs.driver.coBlockStatus(false, pos, end - pos, st);
            if (r < 0) {
                return r;
            }
            if ((st.status & BlockStatus.ALLOCATED) == 0) {
                return copyOnReadv(bs, offset, bytes, qiov, qiovOffset, len, st);
            }
            if (st.bytes <= 0) {
                break;
            }
            pos += st.bytes;
        }
        return ALLOCATED;
    }

    private static int copyOnReadv(BlockNode bs, long offset, long bytes, IoVector qiov, long qiovOffset, long len, BlockStatus st) {
        long cluster = BlockIo.corAlignment(bs);
        long cStart = BlockIo.alignDown(offset, cluster);
        long cEnd = Math.min(BlockIo.alignUp(offset + bytes, cluster), len);
        long chunk = Math.max(CHUNK, cluster);
        BlockDriver drv = bs.driver;
        try (NativeBuffer bounce = NativeBuffer.allocate(chunk, Math.max(4096, bs.limits.minMemAlignment))) {
            IoVector bq = new IoVector(1);
            long pos = cStart;
            while (pos < cEnd) {
                int r = drv.coBlockStatus(false, pos, cEnd - pos, st);
                long pnum = r < 0 || st.bytes <= 0 ? cEnd - pos : Math.min(st.bytes, cEnd - pos);
                boolean allocated = r >= 0 && (st.status & BlockStatus.ALLOCATED) != 0;
                // the caller's part of [pos, pos+pnum)
                long from = Math.max(pos, offset);
                long to = Math.min(pos + pnum, offset + bytes);
                if (allocated) {
                    if (to > from) {
                        int ret = drv.coPreadv(from, to - from, qiov, qiovOffset + (from - offset), 0);
                        if (ret < 0) {
                            return ret;
                        }
                    }
                } else {
                    pnum = Math.min(pnum, chunk);
                    to = Math.min(pos + pnum, offset + bytes);
                    bq.reset();
                    bq.add(bounce.address(), pnum);
                    int ret = drv.coPreadv(pos, pnum, bq, 0, 0);
                    if (ret < 0) {
                        return ret;
                    }
                    bs.event(BlkDebugEvent.COR_WRITE);
                    ret = -Errno.ENOTSUP;
                    if (NativeMemory.isZero(bounce.address(), pnum)) {
                        ret = drv.coPwriteZeroes(pos, pnum, 0);
                    }
                    if (ret == -Errno.ENOTSUP) {
                        ret = drv.coPwritev(pos, pnum, bq, 0, 0);
                    }
                    bs.writeGen.incrementAndGet();
                    if (ret < 0) {
                        return ret;
                    }
                    if (to > from) {
                        qiov.copyFromAddress(qiovOffset + (from - offset), bounce.address() + (from - pos), to - from);
                    }
                }
                pos += pnum;
            }
        }
        return 0;
    }
}
