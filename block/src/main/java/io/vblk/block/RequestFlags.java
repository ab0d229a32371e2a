package io.vblk.block;

/** Request flags: QEMU's BdrvRequestFlags, with the same meaning (and values). */
public final class RequestFlags {
    private RequestFlags() {}

    /** Copy data from the backing chain into this node while reading (BDRV_REQ_COPY_ON_READ). */
    public static final int COPY_ON_READ = 0x1;
    /** The write is a zero write; the qiov is null (BDRV_REQ_ZERO_WRITE). */
    public static final int ZERO_WRITE = 0x2;
    /** A zero write may deallocate (BDRV_REQ_MAY_UNMAP). */
    public static final int MAY_UNMAP = 0x4;
    /** Do not wait for overlapping serialising requests (BDRV_REQ_NO_SERIALISING). */
    public static final int NO_SERIALISING = 0x8;
    /** Force unit access: the data is stable when the request completes (BDRV_REQ_FUA). */
    public static final int FUA = 0x10;
    /** Write only, no read of the source for COR (BDRV_REQ_WRITE_COMPRESSED is 0x20 in QEMU; unused). */
    public static final int WRITE_COMPRESSED = 0x20;
    /** Fail instead of emulating a zero write with buffers (BDRV_REQ_NO_FALLBACK). */
    public static final int NO_FALLBACK = 0x100;
    /** Request is a prefetch for copy-on-read (BDRV_REQ_PREFETCH). */
    public static final int PREFETCH = 0x200;
    /** Internal: the request was issued by the block layer's own RMW (not a guest request). */
    public static final int SERIALISING = 0x400;

    public static String describe(int flags) {
        StringBuilder sb = new StringBuilder();
        if ((flags & COPY_ON_READ) != 0) sb.append("COPY_ON_READ|");
        if ((flags & ZERO_WRITE) != 0) sb.append("ZERO_WRITE|");
        if ((flags & MAY_UNMAP) != 0) sb.append("MAY_UNMAP|");
        if ((flags & NO_SERIALISING) != 0) sb.append("NO_SERIALISING|");
        if ((flags & FUA) != 0) sb.append("FUA|");
        if ((flags & NO_FALLBACK) != 0) sb.append("NO_FALLBACK|");
        if ((flags & PREFETCH) != 0) sb.append("PREFETCH|");
        if ((flags & SERIALISING) != 0) sb.append("SERIALISING|");
        return sb.isEmpty() ? "0" : sb.substring(0, sb.length() - 1);
    }
}
