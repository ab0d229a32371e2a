package io.vblk.qcow2;

import io.vblk.block.Errno;

/**
 * The metadata overlap check in QEMU's default "cached" mode (qcow2_check_metadata_overlap,
 * qcow2_pre_write_overlap_check): before a data or metadata write, the host range is compared with
 * the header cluster, the active L1 table, the refcount table, the snapshot table, every active
 * L2 table, every refcount block and the inactive (snapshot) L1 tables. A hit sets the corrupt
 * bit and fails the write with EIO. A metadata write skips its own kind (an L2 slice write does not
 * check against L2 tables). Mode "none" disables the check, "constant" checks only the fixed
 * structures. Runs with the driver's lock held.
 */
final class Qcow2OverlapCheck {
    static final int MAIN_HEADER = 1, ACTIVE_L1 = 2, ACTIVE_L2 = 4, REFCOUNT_TABLE = 8, REFCOUNT_BLOCK = 16,
            SNAPSHOT_TABLE = 32, INACTIVE_L1 = 64;
    static final int CONSTANT = MAIN_HEADER | ACTIVE_L1 | REFCOUNT_TABLE | SNAPSHOT_TABLE;
    static final int CACHED = CONSTANT | ACTIVE_L2 | REFCOUNT_BLOCK | INACTIVE_L1;

    private final Qcow2Driver s;
    final int mode;

    Qcow2OverlapCheck(Qcow2Driver s, String mode) {
        this.s = s;
        this.mode = switch (mode) {
            case "none" -> 0;
            case "constant" -> CONSTANT;
            default -> CACHED; // "cached" and "all" (inactive L2 tables are not checked)
        };
    }

    /** Checks a guest data write at host [offset, offset+size): 0 or -EIO (corrupt bit set). */
    int checkDataWrite(long offset, long size) {
        return check(0, offset, size);
    }

    /** Checks a metadata write; {@code cache} (may be null for L1 writes) says which kind to skip. */
    int checkMetadataWrite(Qcow2Cache cache, long offset, long size) {
        int ignore = cache == null ? ACTIVE_L1 : cache == s.l2Cache ? ACTIVE_L2 : REFCOUNT_BLOCK;
        return check(ignore, offset, size);
    }

    private int check(int ignore, long offset, long size) {
        String hit = overlaps(mode & ~ignore, offset, size);
        if (hit == null) return 0;
        s.signalCorruption("Preventing invalid write on metadata (overlaps with " + hit + ")");
        return -Errno.EIO;
    }

    /** The name of the first metadata structure that [offset, offset+size) overlaps, or null. */
    String overlaps(int chk, long offset, long size) {
        if (size <= 0) return null;
        int cs = s.header.clusterSize();
        if ((chk & MAIN_HEADER) != 0 && offset < cs) return "qcow2_header";
        if ((chk & ACTIVE_L1) != 0 && s.clusters.l1.length > 0
                && Qcow2Header.rangesOverlap(offset, size, s.clusters.l1Offset, s.clusters.l1.length * 8L)) return "active L1 table";
        if ((chk & REFCOUNT_TABLE) != 0 && Qcow2Header.rangesOverlap(offset, size, s.refcount.tableOffset, (long) s.refcount.tableClusters * cs)) {
            return "refcount table";
        }
        if ((chk & SNAPSHOT_TABLE) != 0 && s.snapshots.tableSize > 0
                && Qcow2Header.rangesOverlap(offset, size, s.header.snapshotsOffset, s.snapshots.tableSize)) return "snapshot table";
        if ((chk & INACTIVE_L1) != 0) {
            for (int i = 0; i < s.snapshots.l1Offsets.length; i++) {
                if (s.snapshots.l1Sizes[i] > 0 && Qcow2Header.rangesOverlap(offset, size, s.snapshots.l1Offsets[i], s.snapshots.l1Sizes[i] * 8L)) {
                    return "inactive L1 table";
                }
            }
        }
        long first = offset & ~(long) (cs - 1);
        long last = (offset + size - 1) & ~(long) (cs - 1);
        if ((chk & ACTIVE_L2) != 0) {
            for (long e : s.clusters.l1) {
                long o = Qcow2Layout.l1Offset(e);
                if (o != 0 && o >= first && o <= last) return "active L2 table";
            }
        }
        if ((chk & REFCOUNT_BLOCK) != 0) {
            // only up to the highest used entry (max_refcount_table_index): the table is mostly empty
            long[] t = s.refcount.table;
            for (int i = 0, n = Math.min(s.refcount.maxTableIndex + 1, t.length); i < n; i++) {
                long o = t[i];
                if (o != 0 && o >= first && o <= last) return "refcount block";
            }
        }
        return null;
    }
}
