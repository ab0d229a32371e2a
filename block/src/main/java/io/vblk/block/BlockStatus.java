package io.vblk.block;

/**
 * Result holder for block-status queries (bdrv_co_block_status): how many bytes from the queried
 * offset share one status, the status bits, and the host offset in {@link #file} when
 * {@link #OFFSET_VALID} is set. Reused across calls to avoid allocation.
 */
public final class BlockStatus {
    /** Data is read from this layer (BDRV_BLOCK_DATA). */
    public static final int DATA = 0x01;
    /** The range reads as zeros (BDRV_BLOCK_ZERO). */
    public static final int ZERO = 0x02;
    /** {@link #offset} is valid (BDRV_BLOCK_OFFSET_VALID). */
    public static final int OFFSET_VALID = 0x04;
    /** Allocated in this layer, not the backing chain (BDRV_BLOCK_ALLOCATED). */
    public static final int ALLOCATED = 0x10;
    /** End of file reached (BDRV_BLOCK_EOF). */
    public static final int EOF = 0x20;
    /** Recurse into {@link #file} for the real status (BDRV_BLOCK_RECURSE). */
    public static final int RECURSE = 0x40;
    /** Compressed data; no offset (vblk extension for map output). */
    public static final int COMPRESSED = 0x80;

    public int status;
    public long bytes;
    public long offset;
    public BlockNode file;

    public void set(int status, long bytes, long offset, BlockNode file) {
        this.status = status;
        this.bytes = bytes;
        this.offset = offset;
        this.file = file;
    }
}
