package io.vblk.block;

/**
 * A node's request limits: QEMU's BlockLimits. Zero means "no limit" (or "byte granularity" for
 * alignments), as in QEMU. Filled by {@link BlockDriver#refreshLimits} after open; drivers inherit
 * their file child's limits before adjusting.
 */
public final class BlockLimits {
    /** Every request offset and length must be a multiple of this (1 = byte granularity). */
    public int requestAlignment = 1;
    /** Largest request the driver takes in one call, in bytes; 0 = unlimited. */
    public long maxTransfer;
    /** Preferred transfer granularity, 0 = none. */
    public long optTransfer;
    /** Buffer address alignment the driver requires (O_DIRECT buf_align). */
    public int minMemAlignment = 1;
    /** Buffer alignment that is fastest. */
    public int optMemAlignment = 1;
    /** Maximum number of iovec slices in one request (IOV_MAX). */
    public int maxIov = 1024;
    /** Alignment of pwrite_zeroes, 0 = requestAlignment. */
    public int pwriteZeroesAlignment;
    /** Maximum pwrite_zeroes length, 0 = unlimited (capped to the internal maximum). */
    public long maxPwriteZeroes;
    /** Alignment of pdiscard, 0 = requestAlignment. */
    public int pdiscardAlignment;
    /** Maximum pdiscard length, 0 = unlimited. */
    public long maxPdiscard;

    public BlockLimits copy() {
        BlockLimits l = new BlockLimits();
        l.requestAlignment = requestAlignment;
        l.maxTransfer = maxTransfer;
        l.optTransfer = optTransfer;
        l.minMemAlignment = minMemAlignment;
        l.optMemAlignment = optMemAlignment;
        l.maxIov = maxIov;
        l.pwriteZeroesAlignment = pwriteZeroesAlignment;
        l.maxPwriteZeroes = maxPwriteZeroes;
        l.pdiscardAlignment = pdiscardAlignment;
        l.maxPdiscard = maxPdiscard;
        return l;
    }

    /** Takes the stricter memory and transfer limits of a child (bdrv_merge_limits). */
    public void mergeFromChild(BlockLimits c) {
        requestAlignment = Math.max(requestAlignment, c.requestAlignment);
        maxTransfer = minNonZero(maxTransfer, c.maxTransfer);
        optTransfer = Math.max(optTransfer, c.optTransfer);
        minMemAlignment = Math.max(minMemAlignment, c.minMemAlignment);
        optMemAlignment = Math.max(optMemAlignment, c.optMemAlignment);
        maxIov = Math.min(maxIov, c.maxIov);
    }

    public static long minNonZero(long a, long b) {
        if (a == 0) return b;
        if (b == 0) return a;
        return Math.min(a, b);
    }

    @Override
    public String toString() {
        return "BlockLimits[requestAlignment=" + requestAlignment + ", maxTransfer=" + maxTransfer
                + ", minMemAlignment=" + minMemAlignment + ", optMemAlignment=" + optMemAlignment
                + ", maxIov=" + maxIov + ", pwriteZeroesAlignment=" + pwriteZeroesAlignment
                + ", maxPwriteZeroes=" + maxPwriteZeroes + ", pdiscardAlignment=" + pdiscardAlignment
                + ", maxPdiscard=" + maxPdiscard + "]";
    }
}
