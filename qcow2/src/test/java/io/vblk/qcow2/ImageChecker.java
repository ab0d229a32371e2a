package io.vblk.qcow2;

import io.vblk.block.BlockException;
import java.util.ArrayList;
import java.util.List;

/**
 * Test-side consistency check of a qcow2 image in memory (a small qemu-img check): counts the
 * references of every cluster from the header, L1, refcount table, refcount blocks, L2 tables and
 * data (normal, zero-alloc, compressed) and compares them with the stored refcounts; also checks
 * the COPIED flags. Snapshots are not walked (unit-test images have none).
 */
final class ImageChecker {
    final List<String> corruptions = new ArrayList<>();
    final List<String> leaks = new ArrayList<>();

    static ImageChecker check(long base, long fileSize) throws BlockException {
        ImageChecker c = new ImageChecker();
        byte[] hb = new byte[(int) Math.min(fileSize, 2 << 20)];
        io.vblk.block.NativeMemory.copyToArray(base, hb, 0, hb.length);
        Qcow2Header h = Qcow2Header.parse(hb);
        int cb = h.clusterBits;
        long cs = h.clusterSize();
        int n = (int) (fileSize / cs);
        long[] refs = new long[n];
        refs[0]++;
        for (long o = h.l1TableOffset; o < h.l1TableOffset + h.l1Size * 8L; o += cs) refs[(int) (o >> cb)]++;
        for (int i = 0; i < h.refcountTableClusters; i++) refs[(int) (h.refcountTableOffset >> cb) + i]++;
        long rtEntries = (long) h.refcountTableClusters * cs / 8;
        long rbEntries = Qcow2Layout.refblockEntries(cb, h.refcountOrder);
        long[] rt = new long[(int) rtEntries];
        for (int i = 0; i < rtEntries; i++) {
            rt[i] = Qcow2Layout.getBE64(base + h.refcountTableOffset + i * 8L);
            if (rt[i] != 0) refs[(int) (rt[i] >> cb)]++;
        }
        List<long[]> l2copied = new ArrayList<>();
        for (int i = 0; i < h.l1Size; i++) {
            long e = Qcow2Layout.getBE64(base + h.l1TableOffset + i * 8L);
            long l2 = Qcow2Layout.l1Offset(e);
            if (l2 == 0) continue;
            refs[(int) (l2 >> cb)]++;
            l2copied.add(new long[] {l2, Qcow2Layout.copied(e) ? 1 : 0, -1});
            for (long j = 0; j < cs / 8; j++) {
                long le = Qcow2Layout.getBE64(base + l2 + j * 8);
                switch (Qcow2Layout.clusterType(le, h.version)) {
                    case NORMAL, ZERO_ALLOC -> {
                        long d = Qcow2Layout.l2Offset(le);
                        if (d / cs >= n) {
                            c.corruptions.add("data cluster beyond file 0x" + Long.toHexString(d));
                            continue;
                        }
                        refs[(int) (d >> cb)]++;
                        l2copied.add(new long[] {d, Qcow2Layout.copied(le) ? 1 : 0, l2});
                    }
                    case COMPRESSED -> {
                        long co = Qcow2Layout.compressedOffset(le, cb);
                        int sz = Qcow2Layout.compressedSize(le, cb);
                        for (long k = co >> cb; k <= (co + sz - 1) >> cb; k++) refs[(int) k]++;
                    }
                    default -> {}
                }
                if (h.version < 3 && (le & 1) != 0 && (le & Qcow2Constants.QCOW_OFLAG_COMPRESSED) == 0) {
                    c.corruptions.add("ZERO flag in a v2 image at L2 0x" + Long.toHexString(l2));
                }
            }
        }
        long[] stored = new long[n];
        for (int ti = 0; ti < rtEntries; ti++) {
            if (rt[ti] == 0) continue;
            for (long bi = 0; bi < rbEntries; bi++) {
                long ci = ti * rbEntries + bi;
                long v = Qcow2Layout.getRefcount(base + rt[ti], h.refcountOrder, bi);
                if (ci >= n) {
                    if (v != 0) c.leaks.add("refcount beyond file for cluster " + ci);
                    continue;
                }
                stored[(int) ci] = v;
            }
        }
        for (int i = 0; i < n; i++) {
            if (stored[i] < refs[i]) c.corruptions.add("ERROR cluster " + i + " refcount=" + stored[i] + " reference=" + refs[i]);
            else if (stored[i] > refs[i]) c.leaks.add("Leaked cluster " + i + " refcount=" + stored[i] + " reference=" + refs[i]);
        }
        for (long[] x : l2copied) {
            long rc = stored[(int) (x[0] >> cb)];
            if ((rc == 1) != (x[1] == 1)) {
                c.corruptions.add("OFLAG_COPIED " + (x[2] < 0 ? "L2" : "data") + " cluster 0x" + Long.toHexString(x[0]) + " refcount=" + rc);
            }
        }
        return c;
    }

    boolean clean() {
        return corruptions.isEmpty() && leaks.isEmpty();
    }

    @Override
    public String toString() {
        return "corruptions=" + corruptions.subList(0, Math.min(5, corruptions.size())) + " (" + corruptions.size() + "), leaks="
                + leaks.subList(0, Math.min(5, leaks.size())) + " (" + leaks.size() + ")";
    }
}
