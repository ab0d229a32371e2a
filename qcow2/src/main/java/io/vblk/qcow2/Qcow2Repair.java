package io.vblk.qcow2;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import java.nio.ByteBuffer;

/**
 * Rebuilds the refcount structure of a dirty image when it is opened read/write: QEMU's
 * qcow2_check (with BDRV_FIX_ERRORS) as run by qcow2_do_open for a dirty image, in the shape of
 * rebuild_refcount_structure. References are counted from the header, the active and snapshot L1
 * tables, their L2 tables, data and compressed clusters and the snapshot table; new refcount blocks
 * and a new refcount table are written past the end of everything referenced, synced, then the
 * header is switched to them (and the dirty bit cleared) with a synced write. The old refcount
 * structures become free space. Memory is bounded by the file length (one int per host cluster).
 * Runs during open, before the driver is used by anyone.
 */
final class Qcow2Repair {
    private final Qcow2Driver s;
    private final int cb;
    private final long cs;
    private final long fileLength;
    private int[] refs;

    private Qcow2Repair(Qcow2Driver s, long fileLength) {
        this.s = s;
        this.cb = s.header.clusterBits;
        this.cs = s.header.clusterSize();
        this.fileLength = fileLength;
    }

    static void rebuild(Qcow2Driver s, long fileLength) throws BlockException {
        new Qcow2Repair(s, fileLength).run();
    }

    private void inc(long off, long len, String what) throws BlockException {
        if (len <= 0) return;
        long first = off >>> cb, last = (off + len - 1) >>> cb;
        if (last >= refs.length) {
            throw new BlockException(Errno.EIO, "Cannot repair the dirty image: " + what + " at 0x" + Long.toHexString(off) + " lies beyond the end of the file");
        }
        for (long c = first; c <= last; c++) {
            if (refs[(int) c] < Integer.MAX_VALUE) refs[(int) c]++;
        }
    }

    private void walkL1(long[] l1) throws BlockException {
        try (NativeBuffer b = NativeBuffer.allocate(cs, 4096)) {
            for (long e : l1) {
                long l2 = Qcow2Layout.l1Offset(e);
                if (l2 == 0) continue;
                if ((l2 & (cs - 1)) != 0) throw new BlockException(Errno.EIO, "Cannot repair the dirty image: unaligned L2 table 0x" + Long.toHexString(l2));
                inc(l2, cs, "L2 table");
                BlockException.check(s.file.preadv(l2, cs, IoVector.of(b.address(), cs), 0, 0), "Could not read an L2 table");
                for (long i = 0; i < cs / 8; i++) {
                    long le = Qcow2Layout.getBE64(b.address() + i * 8);
                    switch (Qcow2Layout.clusterType(le, s.header.version)) {
                        case NORMAL, ZERO_ALLOC -> {
                            long d = Qcow2Layout.l2Offset(le);
                            if ((d & (cs - 1)) != 0) throw new BlockException(Errno.EIO, "Cannot repair the dirty image: unaligned data cluster 0x" + Long.toHexString(d));
                            inc(d, cs, "data cluster");
                        }
                        case COMPRESSED -> {
                            long co = Qcow2Layout.compressedOffset(le, cb);
                            inc(co, Qcow2Layout.compressedSize(le, cb), "compressed cluster");
                        }
                        default -> {}
                    }
                }
            }
        }
    }

    private long[] readL1(long off, int n) throws BlockException {
        long[] l1 = new long[n];
        if (n == 0) return l1;
        long bytes = n * 8L;
        if (off + bytes > fileLength) throw new BlockException(Errno.EIO, "Cannot repair the dirty image: an L1 table lies beyond the end of the file");
        try (NativeBuffer b = NativeBuffer.allocate(bytes, 4096)) {
            BlockException.check(s.file.preadv(off, bytes, IoVector.of(b.address(), bytes), 0, 0), "Could not read a snapshot L1 table");
            for (int i = 0; i < n; i++) l1[i] = Qcow2Layout.getBE64(b.address() + i * 8L);
        }
        return l1;
    }

    private void run() throws BlockException {
        long nClusters = Math.ceilDiv(fileLength, cs);
        if (nClusters > Integer.MAX_VALUE - 1024) throw new BlockException(Errno.EFBIG, "Cannot repair the dirty image: too many clusters");
        refs = new int[(int) nClusters];
        Qcow2Header h = s.header;
        inc(0, cs, "header");
        inc(h.l1TableOffset, h.l1Size * 8L, "L1 table");
        walkL1(s.clusters.l1);
        if (s.snapshots.tableSize > 0) inc(h.snapshotsOffset, s.snapshots.tableSize, "snapshot table");
        for (int i = 0; i < s.snapshots.l1Offsets.length; i++) {
            inc(s.snapshots.l1Offsets[i], s.snapshots.l1Sizes[i] * 8L, "snapshot L1 table");
            walkL1(readL1(s.snapshots.l1Offsets[i], s.snapshots.l1Sizes[i]));
        }
        for (Qcow2Header.Extension e : h.otherExtensions) {
            if (e.type() == QCOW2_EXT_MAGIC_BITMAPS) {
                throw new BlockException(Errno.ENOTSUP, "Cannot repair the dirty image: it has persistent bitmaps; run 'qemu-img check -r all'");
            }
        }
        // new structures past everything referenced and past the old refcount structures (which
        // must stay intact until the header switch): refblocks then the table, covering themselves
        long first = 0;
        for (int c = refs.length - 1; c >= 0; c--) {
            if (refs[c] != 0) {
                first = c + 1L;
                break;
            }
        }
        first = Math.max(first, (s.refcount.tableOffset >>> cb) + s.refcount.tableClusters);
        for (long o : s.refcount.table) {
            if (o != 0) first = Math.max(first, (o >>> cb) + 1);
        }
        long entries = s.refcount.refblockEntries;
        long rb = 1, rt = 1;
        for (int i = 0; i < 64; i++) {
            long total = first + rb + rt;
            long nrb = Math.ceilDiv(total, entries);
            long nrt = Math.max(1, Math.ceilDiv(nrb * 8, cs));
            if (nrb == rb && nrt == rt) break;
            rb = nrb;
            rt = nrt;
        }
        if (rt * cs > QCOW_MAX_REFTABLE_SIZE) throw new BlockException(Errno.EFBIG, "Cannot repair the dirty image: refcount table too large");
        long rbOff = first << cb;
        long rtOff = rbOff + (rb << cb);
        long max = s.refcount.refcountMax;
        long[] table = new long[(int) (rt * cs / 8)];
        try (NativeBuffer b = NativeBuffer.allocate(cs, 4096)) {
            for (long i = 0; i < rb; i++) {
                b.fill(0, cs, (byte) 0);
                for (long j = 0; j < entries; j++) {
                    long c = i * entries + j;
                    long v;
                    if (c >= first && c < first + rb + rt) v = 1;
                    else v = c < nClusters ? refs[(int) c] : 0;
                    if (v > max) throw new BlockException(Errno.EIO, "Cannot repair the dirty image: refcount of cluster " + c + " exceeds " + max);
                    if (v != 0) Qcow2Layout.setRefcount(b.address(), s.refcount.refcountOrder, j, v);
                }
                long off = rbOff + (i << cb);
                BlockException.check(s.file.pwritev(off, cs, IoVector.of(b.address(), cs), 0, 0), "Could not write a refcount block");
                table[(int) i] = off;
            }
        }
        try (NativeBuffer b = NativeBuffer.allocate(rt * cs, 4096)) {
            b.fill(0, rt * cs, (byte) 0);
            for (int i = 0; i < table.length; i++) Qcow2Layout.putBE64(b.address() + i * 8L, table[i]);
            BlockException.check(s.file.pwritev(rtOff, rt * cs, IoVector.of(b.address(), rt * cs), 0, 0), "Could not write the refcount table");
        }
        BlockException.check(s.file.flush(), "Could not flush the new refcount structure");
        try (NativeBuffer b = NativeBuffer.allocate(512, 512)) {
            ByteBuffer bb = ByteBuffer.allocate(12).putLong(rtOff).putInt((int) rt);
            NativeMemory.copyFromArray(bb.array(), 0, b.address(), 12);
            BlockException.check(s.file.pwritev(OFF_REFCOUNT_TABLE_OFFSET, 12, IoVector.of(b.address(), 12), 0, 0), "Could not switch to the new refcount table");
            BlockException.check(s.file.flush(), "Could not flush the header");
        }
        h.refcountTableOffset = rtOff;
        h.refcountTableClusters = (int) rt;
        s.refcount.table = table;
        s.refcount.tableOffset = rtOff;
        s.refcount.tableClusters = (int) rt;
        s.refcount.freeClusterIndex = 0;
        // the refcounts are right again: clear the dirty bit
        long inc = h.incompatibleFeatures & ~QCOW2_INCOMPAT_DIRTY;
        BlockException.check(s.writeBE64Sync(OFF_INCOMPATIBLE_FEATURES, inc), "Could not clear the dirty bit");
        h.incompatibleFeatures = inc;
    }
}
