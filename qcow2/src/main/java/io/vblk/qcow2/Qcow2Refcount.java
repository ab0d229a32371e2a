package io.vblk.qcow2;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.BlkDebugEvent;
import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import java.util.ArrayList;
import java.util.List;

/**
 * Refcount table, refcount blocks and cluster allocation: QEMU's block/qcow2-refcount.c
 * (qcow2_get_refcount, alloc_clusters_noref, qcow2_alloc_clusters, qcow2_alloc_clusters_at,
 * update_refcount with undo, alloc_refcount_block with self-describing blocks and the EAGAIN
 * restart, qcow2_refcount_area for reftable growth, qcow2_free_clusters, qcow2_free_any_cluster).
 *
 * <p>Everything here runs with the driver's {@code lock} held; all fields are guarded by it.
 */
final class Qcow2Refcount {
    private final Qcow2Driver s;
    final int clusterBits;
    final int clusterSize;
    final int refcountOrder;
    final long refblockEntries;      // refcount_block_size
    final int refblockBits;          // log2(refblockEntries)
    final long refcountMax;
    long[] table;                    // refcount_table, host order, guarded by lock
    int maxTableIndex = -1;          // max_refcount_table_index: highest non-zero entry (-1: none), guarded by lock
    long tableOffset;                // refcount_table_offset
    int tableClusters;               // refcount_table_clusters
    long freeClusterIndex;           // free_cluster_index hint
    /**
     * Host ranges freed while {@link #collectDiscards} is set, sent to the file after the metadata
     * is on disk; a cluster allocated again before then is taken out ({@link #keepFromDiscard}).
     */
    final List<long[]> pendingDiscards = new ArrayList<>();
    boolean collectDiscards;

    Qcow2Refcount(Qcow2Driver s, Qcow2Header h) {
        this.s = s;
        this.clusterBits = h.clusterBits;
        this.clusterSize = h.clusterSize();
        this.refcountOrder = h.refcountOrder;
        this.refblockBits = clusterBits + 3 - refcountOrder;
        this.refblockEntries = 1L << refblockBits;
        this.refcountMax = Qcow2Layout.maxRefcount(refcountOrder);
        this.tableOffset = h.refcountTableOffset;
        this.tableClusters = h.refcountTableClusters;
    }

    /** qcow2_refcount_init: loads and validates the refcount table (size already bounded by the header check). */
    void load(long fileLength) throws BlockException {
        int n = (int) (((long) tableClusters << clusterBits) / 8);
        table = new long[n];
        try (NativeBuffer b = NativeBuffer.allocate((long) n * 8, 4096)) {
            s.file.event(BlkDebugEvent.REFTABLE_LOAD);
            BlockException.check(s.file.preadv(tableOffset, (long) n * 8, IoVector.of(b.address(), (long) n * 8), 0, 0), "Could not read the refcount table");
            long tableEnd = tableOffset + ((long) tableClusters << clusterBits);
            for (int i = 0; i < n; i++) {
                long e = Qcow2Layout.getBE64(b.address() + i * 8L);
                if ((e & REFT_RESERVED_MASK) != 0) {
                    throw new BlockException(Errno.EIO, "Refcount table entry " + i + " has reserved bits set (0x" + Long.toHexString(e) + ")");
                }
                long o = e & REFT_OFFSET_MASK;
                if (o == 0) continue;
                if ((o & (clusterSize - 1)) != 0) {
                    throw new BlockException(Errno.EIO, "Refcount block " + i + " offset 0x" + Long.toHexString(o) + " is not cluster aligned");
                }
                if (o >= tableOffset && o < tableEnd) {
                    throw new BlockException(Errno.EIO, "Refcount block " + i + " at 0x" + Long.toHexString(o) + " points into the refcount table");
                }
                if (o == 0 || o > fileLength - clusterSize) {
                    throw new BlockException(Errno.EIO, "Refcount block " + i + " at 0x" + Long.toHexString(o) + " lies outside the image file");
                }
                table[i] = o;
            }
        }
        recomputeMaxTableIndex();
    }

    /** Sets {@link #maxTableIndex} from the table (update_max_refcount_table_index). */
    void recomputeMaxTableIndex() {
        int i = table.length - 1;
        while (i >= 0 && table[i] == 0) i--;
        maxTableIndex = i;
    }

    /** qcow2_get_refcount: refcount of host cluster {@code clusterIndex}, or a negative errno. */
    long get(long clusterIndex) {
        long ti = clusterIndex >>> refblockBits;
        if (ti >= table.length) return 0;
        long block = table[(int) ti];
        if (block == 0) return 0;
        int slot = s.refblockCache.get(block);
        if (slot < 0) return slot;
        long v = Qcow2Layout.getRefcount(s.refblockCache.address(slot), refcountOrder, clusterIndex & (refblockEntries - 1));
        s.refblockCache.put(slot);
        return v;
    }

    /** alloc_clusters_noref: finds {@code nb} free contiguous clusters from the hint; no refcount change. */
    long allocNoref(long nb) {
        while (true) {
            long start = freeClusterIndex;
            long i = 0;
            for (; i < nb; i++) {
                long rc = get(freeClusterIndex++);
                if (rc < 0) return rc;
                if (rc != 0) break;
            }
            if (i == nb) {
                long off = start << clusterBits;
                if (off + (nb << clusterBits) - 1 > QCOW_MAX_CLUSTER_OFFSET) return -Errno.EFBIG;
                return off;
            }
        }
    }

    /** qcow2_alloc_clusters: allocates {@code nb} contiguous clusters with refcount 1; returns the host offset or -errno. */
    long allocClusters(long nb) {
        s.file.event(BlkDebugEvent.CLUSTER_ALLOC);
        while (true) {
            long off = allocNoref(nb);
            if (off < 0) return off;
            int ret = update(off, nb << clusterBits, 1);
            if (ret == -Errno.EAGAIN) continue;
            if (ret < 0) return ret;
            return off;
        }
    }

    /** qcow2_alloc_clusters_at: allocates up to {@code nb} free clusters starting exactly at {@code offset}; returns how many (>= 0) or -errno. */
    long allocClustersAt(long offset, long nb) {
        while (true) {
            long ci = offset >>> clusterBits;
            long i = 0;
            for (; i < nb; i++) {
                long rc = get(ci + i);
                if (rc < 0) return rc;
                if (rc != 0) break;
            }
            if (i == 0) return 0;
            int ret = update(offset, i << clusterBits, 1);
            if (ret == -Errno.EAGAIN) continue;
            if (ret < 0) return ret;
            return i;
        }
    }

    /**
     * update_refcount: adds {@code addend} to the refcount of every cluster touched by
     * [offset, offset+length). A decrease makes the refcount cache depend on the L2 cache (the L2
     * entry removal reaches disk first). On failure the clusters already changed are restored.
     */
    int update(long offset, long length, long addend) {
        if (length == 0) return 0;
        boolean decrease = addend < 0;
        int ret;
        if (decrease) {
            ret = s.refblockCache.setDependency(s.l2Cache);
            if (ret < 0) return ret;
        }
        long start = offset & ~(long) (clusterSize - 1);
        long last = (offset + length - 1) & ~(long) (clusterSize - 1);
        long oldTi = -1;
        int slot = -1;
        long cur = start;
        ret = 0;
        for (; cur <= last; cur += clusterSize) {
            long ci = cur >>> clusterBits;
            long ti = ci >>> refblockBits;
            if (ti != oldTi) {
                if (slot >= 0) s.refblockCache.put(slot);
                slot = allocRefcountBlock(ci);
                if (slot < 0) {
                    ret = slot;
                    slot = -1;
                    break;
                }
                oldTi = ti;
            }
            long addr = s.refblockCache.address(slot);
            long bi = ci & (refblockEntries - 1);
            long rc = Qcow2Layout.getRefcount(addr, refcountOrder, bi);
            long n = rc + addend;
            if (n < 0 || n > refcountMax) {
                ret = -Errno.EINVAL;
                break;
            }
            s.refblockCache.markDirty(slot);
            Qcow2Layout.setRefcount(addr, refcountOrder, bi, n);
            if (rc == 0 && !pendingDiscards.isEmpty()) {
                // freed earlier in this request and taken again (e.g. as a new L2 table): not to be punched
                keepFromDiscard(cur);
            }
            if (n == 0) {
                if (ci < freeClusterIndex) freeClusterIndex = ci;
                s.refblockCache.discardCluster(cur, clusterSize);
                s.l2Cache.discardCluster(cur, clusterSize);
                if (collectDiscards) queueDiscard(cur);
            }
        }
        if (slot >= 0) s.refblockCache.put(slot);
        if (ret < 0 && cur > start) {
            // undo what was done (the failing cluster itself was not changed)
            update(offset, cur - offset, -addend);
        }
        return ret;
    }

    /**
     * Takes the cluster at {@code off} out of the pending discards: it was allocated again before
     * they were sent, and punching it would destroy what it now holds.
     */
    private void keepFromDiscard(long off) {
        for (int i = 0; i < pendingDiscards.size(); i++) {
            long[] r = pendingDiscards.get(i);
            long end = r[0] + r[1];
            if (off < r[0] || off >= end) continue;
            if (off == r[0]) {
                r[0] += clusterSize;
                r[1] -= clusterSize;
                if (r[1] == 0) pendingDiscards.remove(i);
            } else if (off + clusterSize == end) {
                r[1] -= clusterSize;
            } else {
                r[1] = off - r[0];
                pendingDiscards.add(i + 1, new long[] {off + clusterSize, end - off - clusterSize});
            }
            return;
        }
    }

    private void queueDiscard(long off) {
        if (!pendingDiscards.isEmpty()) {
            long[] lastR = pendingDiscards.get(pendingDiscards.size() - 1);
            if (lastR[0] + lastR[1] == off) {
                lastR[1] += clusterSize;
                return;
            }
        }
        pendingDiscards.add(new long[] {off, clusterSize});
    }

    /**
     * alloc_refcount_block: the cache slot of the refcount block describing {@code clusterIndex},
     * or -EAGAIN after creating a new one (the caller restarts its free-space search), or -errno.
     */
    private int allocRefcountBlock(long clusterIndex) {
        long ti = clusterIndex >>> refblockBits;
        if (ti < table.length && table[(int) ti] != 0) {
            long off = table[(int) ti];
            return s.refblockCache.get(off);
        }
        // we write to the refcount table, so we might depend on L2 tables
        int ret = s.l2Cache.flush();
        if (ret < 0) return ret;
        s.file.event(BlkDebugEvent.REFBLOCK_ALLOC);
        long newBlock = allocNoref(1);
        if (newBlock < 0) return (int) newBlock;
        if (newBlock == 0) {
            return s.signalCorruption("Preventing invalid allocation of refcount block at offset 0");
        }
        int slot;
        if ((newBlock >>> (clusterBits + refblockBits)) == ti) {
            // self-describing: the block holds its own refcount
            slot = s.refblockCache.getEmpty(newBlock);
            if (slot < 0) return slot;
            NativeMemory.fill(s.refblockCache.address(slot), clusterSize, (byte) 0);
            Qcow2Layout.setRefcount(s.refblockCache.address(slot), refcountOrder, (newBlock >>> clusterBits) & (refblockEntries - 1), 1);
        } else {
            ret = update(newBlock, clusterSize, 1);
            if (ret < 0) return ret;
            ret = s.refblockCache.flush();
            if (ret < 0) return ret;
            slot = s.refblockCache.getEmpty(newBlock);
            if (slot < 0) return slot;
            NativeMemory.fill(s.refblockCache.address(slot), clusterSize, (byte) 0);
        }
        s.file.event(BlkDebugEvent.REFBLOCK_ALLOC_WRITE);
        s.refblockCache.markDirty(slot);
        ret = s.refblockCache.flush();
        if (ret < 0) {
            s.refblockCache.put(slot);
            return ret;
        }
        if (ti < table.length) {
            s.file.event(BlkDebugEvent.REFBLOCK_ALLOC_HOOKUP);
            ret = s.writeBE64Sync(tableOffset + ti * 8, newBlock);
            s.refblockCache.put(slot);
            if (ret < 0) return ret;
            table[(int) ti] = newBlock;
            if (ti > maxTableIndex) maxTableIndex = (int) ti;
            return -Errno.EAGAIN;
        }
        s.refblockCache.put(slot);
        // the table must grow: new self-covering structures past everything allocated so far
        long blocksUsed = Math.ceilDiv(Math.max(clusterIndex + 1, (newBlock >>> clusterBits) + 1), refblockEntries);
        ret = refcountArea(blocksUsed, ti, newBlock);
        return ret < 0 ? ret : -Errno.EAGAIN;
    }

    /**
     * qcow2_refcount_area: builds new refcount blocks and a new, larger refcount table at the
     * start of reftable index {@code areaIndex} (beyond every allocated cluster), with 50 %
     * headroom; blocks and table written and synced, then the header switched (12 bytes at 48,
     * synced), then the old table freed.
     */
    private int refcountArea(long areaIndex, long newIndex, long newBlock) {
        s.file.event(BlkDebugEvent.REFTABLE_GROW);
        long startCluster = areaIndex * refblockEntries;
        long newBlocks = 1, tableC = 1;
        for (int iter = 0; iter < 64; iter++) {
            long entries = Math.max((areaIndex + newBlocks) * 3 / 2, newIndex + 1);
            long tc = Math.ceilDiv(entries * 8, clusterSize);
            long nb = Math.ceilDiv(newBlocks + tc, refblockEntries);
            if (nb == newBlocks && tc == tableC) break;
            newBlocks = Math.max(nb, 1);
            tableC = tc;
        }
        long tableBytes = tableC * clusterSize;
        if (tableBytes > QCOW_MAX_REFTABLE_SIZE) return -Errno.EFBIG;
        long startOffset = startCluster << clusterBits;
        long tableOff = startOffset + (newBlocks << clusterBits);
        long endOffset = tableOff + tableBytes;
        if (endOffset - 1 > QCOW_MAX_CLUSTER_OFFSET) return -Errno.EFBIG;
        int n = (int) (tableBytes / 8);
        long[] nt = new long[n];
        System.arraycopy(table, 0, nt, 0, table.length);
        if (newIndex < n) nt[(int) newIndex] = newBlock;
        int ret;
        try (NativeBuffer blk = NativeBuffer.allocate(clusterSize, 4096)) {
            for (long i = 0; i < newBlocks; i++) {
                blk.fill(0, clusterSize, (byte) 0);
                long firstCovered = (areaIndex + i) * refblockEntries;       // cluster index
                long endCluster = endOffset >>> clusterBits;
                for (long c = Math.max(firstCovered, startCluster); c < Math.min(endCluster, firstCovered + refblockEntries); c++) {
                    Qcow2Layout.setRefcount(blk.address(), refcountOrder, c - firstCovered, 1);
                }
                long off = startOffset + (i << clusterBits);
                nt[(int) (areaIndex + i)] = off;
                ret = s.file.pwritev(off, clusterSize, IoVector.of(blk.address(), clusterSize), 0, 0);
                if (ret < 0) return ret;
            }
        }
        s.file.event(BlkDebugEvent.REFBLOCK_ALLOC_WRITE_BLOCKS);
        try (NativeBuffer tb = NativeBuffer.allocate(tableBytes, 4096)) {
            for (int i = 0; i < n; i++) Qcow2Layout.putBE64(tb.address() + i * 8L, nt[i]);
            s.file.event(BlkDebugEvent.REFBLOCK_ALLOC_WRITE_TABLE);
            ret = s.file.pwritev(tableOff, tableBytes, IoVector.of(tb.address(), tableBytes), 0, 0);
            if (ret < 0) return ret;
            ret = s.file.flush();
            if (ret < 0) return ret;
        }
        s.file.event(BlkDebugEvent.REFBLOCK_ALLOC_SWITCH_TABLE);
        try (NativeBuffer hb = NativeBuffer.allocate(512, 512)) {
            Qcow2Layout.putBE64(hb.address(), tableOff);
            NativeMemory.putIntLE(hb.address() + 8, Integer.reverseBytes((int) tableC));
            ret = s.file.pwritev(OFF_REFCOUNT_TABLE_OFFSET, 12, IoVector.of(hb.address(), 12), 0, 0);
            if (ret < 0) return ret;
            ret = s.file.flush();
            if (ret < 0) return ret;
        }
        long oldOff = tableOffset;
        long oldBytes = (long) tableClusters << clusterBits;
        table = nt;
        recomputeMaxTableIndex();
        tableOffset = tableOff;
        tableClusters = (int) tableC;
        s.header.refcountTableOffset = tableOff;
        s.header.refcountTableClusters = (int) tableC;
        free(oldOff, oldBytes);
        return 0;
    }

    /** qcow2_free_clusters: drops one reference; a failure only leaks (it is reported, not returned). */
    void free(long offset, long size) {
        s.file.event(BlkDebugEvent.CLUSTER_FREE);
        int ret = update(offset, size, -1);
        if (ret < 0) {
            s.warn("qcow2_free_clusters failed: " + Errno.describe(-ret) + " (leaked clusters at 0x" + Long.toHexString(offset) + ")");
        }
    }

    /** qcow2_free_any_cluster: frees what an L2 entry references (normal, zero-alloc or compressed). */
    void freeAny(long l2e) {
        switch (Qcow2Layout.clusterType(l2e, s.header.version)) {
            case COMPRESSED -> free(Qcow2Layout.compressedOffset(l2e, clusterBits) & ~511L,
                    ((Qcow2Layout.compressedOffset(l2e, clusterBits) & 511) + Qcow2Layout.compressedSize(l2e, clusterBits)));
            case NORMAL, ZERO_ALLOC -> free(Qcow2Layout.l2Offset(l2e), clusterSize);
            default -> {}
        }
    }

    /** Host offset just past the last refcount-described cluster in use (for tests and image end). */
    long imageEnd() {
        for (int ti = table.length - 1; ti >= 0; ti--) {
            if (table[ti] == 0) continue;
            for (long bi = refblockEntries - 1; bi >= 0; bi--) {
                long rc = get(ti * refblockEntries + bi);
                if (rc > 0) return ((ti * refblockEntries) + bi + 1) << clusterBits;
            }
        }
        return 0;
    }
}
