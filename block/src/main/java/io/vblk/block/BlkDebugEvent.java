package io.vblk.block;

import java.util.Locale;

/**
 * Named points in the request path where the {@code debug} driver can inject errors or pause a
 * request: QEMU's BlkdebugEvent, with the same names (lower case in options, as in blkdebug
 * config files). Drivers fire them on a child node with {@link BlockNode#event}, as QEMU's
 * BLKDBG_EVENT(bs->file, ...) does.
 */
public enum BlkDebugEvent {
    L1_UPDATE, L1_GROW_ALLOC_TABLE, L1_GROW_WRITE_TABLE, L1_GROW_ACTIVATE_TABLE,
    L1_SHRINK_WRITE_TABLE, L1_SHRINK_FREE_L2_CLUSTERS,
    L2_LOAD, L2_UPDATE, L2_UPDATE_COMPRESSED, L2_ALLOC_COW_READ, L2_ALLOC_WRITE,
    READ_AIO, READ_BACKING_AIO, READ_COMPRESSED,
    WRITE_AIO, WRITE_COMPRESSED,
    VMSTATE_LOAD, VMSTATE_SAVE,
    COW_READ, COW_WRITE,
    REFTABLE_LOAD, REFTABLE_GROW, REFTABLE_UPDATE,
    REFBLOCK_LOAD, REFBLOCK_UPDATE, REFBLOCK_UPDATE_PART,
    REFBLOCK_ALLOC, REFBLOCK_ALLOC_HOOKUP, REFBLOCK_ALLOC_WRITE, REFBLOCK_ALLOC_WRITE_BLOCKS,
    REFBLOCK_ALLOC_WRITE_TABLE, REFBLOCK_ALLOC_SWITCH_TABLE,
    CLUSTER_ALLOC, CLUSTER_ALLOC_BYTES, CLUSTER_FREE, CLUSTER_ALLOC_SPACE,
    FLUSH_TO_OS, FLUSH_TO_DISK,
    PWRITEV_RMW_HEAD, PWRITEV_RMW_AFTER_HEAD, PWRITEV_RMW_TAIL, PWRITEV_RMW_AFTER_TAIL,
    PWRITEV, PWRITEV_ZERO, PWRITEV_DONE,
    EMPTY_IMAGE_PREPARE,
    COR_WRITE;

    /** The blkdebug spelling, e.g. "pwritev_rmw_head". */
    public String optionName() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static BlkDebugEvent parse(String s) {
        return valueOf(s.trim().toUpperCase(Locale.ROOT).replace('.', '_'));
    }
}
