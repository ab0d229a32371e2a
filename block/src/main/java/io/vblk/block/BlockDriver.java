package io.vblk.block;

/**
 * One driver instance bound to one {@link BlockNode}: the state and the vtable of QEMU's
 * BlockDriver (bs->opaque plus drv->bdrv_co_*). The node's generic request path
 * ({@link BlockIo}) validates, aligns, serialises and fragments requests before they reach these
 * methods, so a driver sees requests that honour its {@link BlockLimits}.
 *
 * <p>The {@code co*} methods run in a coroutine and may park. They return 0 (or a non-negative
 * count) on success and a negative errno on failure; they never throw for an I/O error.
 */
public abstract class BlockDriver {
    /** The node this driver serves; set by {@link BlockNode} before open returns. */
    protected BlockNode node;

    void attach(BlockNode n) {
        this.node = n;
    }

    public BlockNode node() {
        return node;
    }

    /** The driver name, as in {@code driver=} ("file", "qcow2", "raw", "null", "memory", "debug"). */
    public abstract String driverName();

    /** Reads {@code bytes} at {@code offset} into {@code qiov} from {@code qiovOffset} (bdrv_co_preadv_part). */
    public abstract int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags);

    /**
     * Starts an aligned read or write without a coroutine, for {@link BlockNode#startRw}: the
     * request already passed the node's checks, tracking and drain accounting. Returns false when
     * this driver cannot take the request this way (the caller then uses {@link #coPreadv} or
     * {@link #coPwritev}, and {@code done} never runs); true when started, and {@code done} then
     * runs exactly once, later, on the calling I/O thread, never inside this call. Runs on an I/O
     * thread, inside or outside a coroutine; must not park. The default takes nothing.
     */
    public boolean startRw(boolean write, long offset, long bytes, IoVector qiov, long qiovOffset, int flags, IoCompletion done) {
        return false;
    }

    /** Writes (bdrv_co_pwritev_part). {@code flags} only contains bits of {@link #supportedWriteFlags()}. */
    public abstract int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags);

    /** Efficiently zeroes a range (bdrv_co_pwrite_zeroes); -ENOTSUP lets the block layer fall back to buffers. */
    public int coPwriteZeroes(long offset, long bytes, int flags) {
        return -Errno.ENOTSUP;
    }

    /** Discards a range (bdrv_co_pdiscard); -ENOTSUP is treated as success by the block layer. */
    public int coPdiscard(long offset, long bytes) {
        return -Errno.ENOTSUP;
    }

    /** Writes cached state to the layer below (bdrv_co_flush_to_os), e.g. qcow2's metadata caches. */
    public int coFlushToOs() {
        return 0;
    }

    /** Makes everything written so far stable (bdrv_co_flush_to_disk), e.g. fdatasync. */
    public int coFlushToDisk() {
        return 0;
    }

    /** True if {@link #coFlushToDisk()} does real work; false lets the flush recurse into the file child only. */
    public boolean hasFlushToDisk() {
        return false;
    }

    /** Length in bytes, or a negative errno (bdrv_co_getlength). */
    public abstract long getLength();

    /** Resizes (bdrv_co_truncate). */
    public int coTruncate(long offset, boolean exact, PreallocMode prealloc, int flags) {
        return -Errno.ENOTSUP;
    }

    /** Adjusts {@code limits}, which arrive pre-filled from the file child (bdrv_refresh_limits). */
    public void refreshLimits(BlockLimits limits) {}

    /** Write flags the driver handles itself, e.g. {@link RequestFlags#FUA}; others are emulated. */
    public int supportedWriteFlags() {
        return 0;
    }

    /** Flags the driver handles on zero writes, e.g. {@link RequestFlags#MAY_UNMAP}. */
    public int supportedZeroFlags() {
        return 0;
    }

    /** Cluster size for info and COR alignment, or 0 (BlockDriverInfo.cluster_size). */
    public int clusterSize() {
        return 0;
    }

    /** True if a new image of this driver reads as zeros (bdrv_has_zero_init). */
    public boolean hasZeroInit() {
        return false;
    }

    /**
     * Allocation status of the range starting at {@code offset} (bdrv_co_block_status). The
     * default says "data, at the same offset in this node" as protocol drivers do.
     */
    public int coBlockStatus(boolean wantZero, long offset, long bytes, BlockStatus out) {
        out.set(BlockStatus.DATA | BlockStatus.OFFSET_VALID | BlockStatus.ALLOCATED, bytes, offset, node);
        return 0;
    }

    /** Called when a debug event fires on this node; only the debug driver acts on it. */
    public void debugEvent(BlkDebugEvent event) {}

    /** Releases resources after the node has drained. Flushes are the caller's job. */
    public void close() {}

    /** The file name for messages and info, or null. */
    public String filename() {
        BlockChild f = node == null ? null : node.file();
        return f == null ? null : f.node().filename();
    }
}
