package io.vblk.qcow2.check;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.Errno;
import io.vblk.qcow2.Qcow2Header;
import java.io.PrintStream;

/**
 * Writes a complete new refcount structure from the counted references and switches the header
 * to it: QEMU's rebuild_refcount_structure (block/qcow2-refcount.c), in our own layout.
 *
 * <p>The new refcount blocks and the new refcount table are placed together right after the last
 * cluster that is referenced when they fit before the end of the file (so a file that cannot
 * grow, such as a block device or a fixed-size node, is repaired in its free tail), else at the
 * end of the file. Either way no live cluster (including the old refcount structures, which are
 * counted as references until the switch) is ever overwritten. Their
 * number is found by a fixed-point iteration (the new clusters need refcounts themselves). The
 * write order makes a crash at any point harmless:
 * <ol>
 *   <li>every new refcount block (covering every cluster with a reference, and the new
 *       structures themselves), then the new refcount table, then a flush;</li>
 *   <li>the 12 header bytes at offset 48 (refcount_table_offset, refcount_table_clusters) in one
 *       write, then a flush.</li>
 * </ol>
 * Before step 2 the old structures are in use and the new ones are unreferenced bytes past the
 * old end of the image; after it the old refcount table and blocks are leaks, which the caller's
 * second pass (compare with FIX_LEAKS) releases.
 */
final class RefcountRebuild {
    private final CheckFile file;
    private final Qcow2Header h;
    private final PrintStream log;
    private final int[] refs;
    private final long nb;
    private final int cb;
    private final int cs;

    RefcountRebuild(CheckFile file, Qcow2Header h, PrintStream log, int[] refs, long nb) {
        this.file = file;
        this.h = h;
        this.log = log;
        this.refs = refs;
        this.nb = nb;
        this.cb = h.clusterBits;
        this.cs = 1 << cb;
    }

    /** Size of a new refcount structure placed at a given first cluster. */
    private record Layout(long k, long blocks, long tableClusters, long nIdx) {}

    /**
     * Fixed point: the {@code k} clusters of new structures starting at {@code start} must be
     * covered by the refblocks among them. Null if it does not converge.
     */
    private Layout layout(long start, long perBlock, long baseIdx, boolean[] used) {
        long k = 0;
        for (int iter = 0; iter <= 64; iter++) {
            long allEnd = start + k;
            long nIdx = (allEnd + perBlock - 1) / perBlock;
            long blocks = 0;
            for (long idx = 0; idx < nIdx; idx++) {
                boolean old = idx < baseIdx && used[(int) idx];
                boolean fresh = k > 0 && idx * perBlock < allEnd && (idx + 1) * perBlock > start;
                if (old || fresh) blocks++;
            }
            long tableClusters = Math.max(1, (nIdx * 8 + cs - 1) >>> cb);
            long need = blocks + tableClusters;
            if (need == k) return new Layout(k, blocks, tableClusters, nIdx);
            k = need;
        }
        return null;
    }

    /** Rebuilds; returns 0 or a negative errno (with a message on the log). */
    int run() {
        int order = h.refcountOrder;
        long perBlock = 1L << (cb + 3 - order);
        long baseIdx = (nb + perBlock - 1) / perBlock;  // refblock indexes covering existing clusters
        boolean[] used = new boolean[(int) baseIdx];
        long tail = 0;                                   // first cluster after the last reference
        for (long c = 0; c < nb; c++) {
            if (refs[(int) c] != 0) {
                used[(int) (c / perBlock)] = true;
                tail = c + 1;
            }
        }
        // The new structures go into the unreferenced tail of the file when they fit there whole
        // (so a file that cannot grow, such as a block device or a fixed-size node, can be
        // repaired), else they are appended at the end of the file as before.
        long start = tail;
        Layout l = layout(start, perBlock, baseIdx, used);
        if (l != null && start + l.k > nb) {
            start = nb;
            l = layout(start, perBlock, baseIdx, used);
        }
        if (l == null) {
            log.println("ERROR: could not lay out the new refcount structure");
            return -Errno.EIO;
        }
        long k = l.k, blocks = l.blocks, tableClusters = l.tableClusters, nIdx = l.nIdx;
        if (tableClusters << cb > QCOW_MAX_REFTABLE_SIZE) {
            log.println("ERROR: the new refcount table would be too large (" + tableClusters + " clusters): " + Errno.describe(Errno.EFBIG));
            return -Errno.EFBIG;
        }
        if (((start + k) << cb) - 1 > QCOW_MAX_CLUSTER_OFFSET || start + k > Integer.MAX_VALUE) {
            log.println("ERROR: no room for the new refcount structure: " + Errno.describe(Errno.EFBIG));
            return -Errno.EFBIG;
        }
        long tableOffset = (start + blocks) << cb;
        byte[] table = new byte[(int) (tableClusters << cb)];
        byte[] block = new byte[cs];
        long next = start;
        long allEnd = start + k;
        for (long idx = 0; idx < nIdx; idx++) {
            boolean old = idx < baseIdx && used[(int) idx];
            boolean fresh = idx * perBlock < allEnd && (idx + 1) * perBlock > start;
            if (!old && !fresh) continue;
            java.util.Arrays.fill(block, (byte) 0);
            long first = idx * perBlock;
            for (long c = first; c < first + perBlock && c < allEnd; c++) {
                long v = c >= start ? 1 : refs[(int) c];   // new structures have refcount 1
                if (v != 0) RefcountCodec.set(block, order, (int) (c - first), v);
            }
            long off = next << cb;
            next++;
            int r = file.write(off, block, 0, cs);
            if (r < 0) {
                log.println("ERROR: could not write a new refcount block: " + Errno.describe(-r));
                return r;
            }
            RefcountCodec.putBE64(table, (int) (idx * 8), off);
        }
        int r = file.write(tableOffset, table, 0, table.length);
        if (r < 0) {
            log.println("ERROR: could not write the new refcount table: " + Errno.describe(-r));
            return r;
        }
        r = file.flush();
        if (r < 0) {
            log.println("ERROR: could not flush the new refcount structure: " + Errno.describe(-r));
            return r;
        }
        byte[] hdr = new byte[12];
        RefcountCodec.putBE64(hdr, 0, tableOffset);
        hdr[8] = (byte) (tableClusters >>> 24);
        hdr[9] = (byte) (tableClusters >>> 16);
        hdr[10] = (byte) (tableClusters >>> 8);
        hdr[11] = (byte) tableClusters;
        r = file.write(OFF_REFCOUNT_TABLE_OFFSET, hdr, 0, 12);
        if (r >= 0) r = file.flush();
        if (r < 0) {
            log.println("ERROR: could not update the header with the new refcount table: " + Errno.describe(-r));
            return r;
        }
        h.refcountTableOffset = tableOffset;
        h.refcountTableClusters = (int) tableClusters;
        return 0;
    }
}
