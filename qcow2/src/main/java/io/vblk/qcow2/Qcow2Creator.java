package io.vblk.qcow2;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.PreallocMode;

/**
 * Writes a new, empty qcow2 image onto a protocol node: QEMU's qcow2_co_create with
 * {@code qemu-img create}'s default layout (research/qcow2.md 1.10): header in cluster 0, the
 * refcount table in cluster 1, refcount block(s) from cluster 2, then the L1 table; with
 * {@code preallocation=metadata} the L2 tables and data clusters follow (each L2 table before the
 * data it maps), the L2 entries point at the reserved clusters and the file is extended sparsely.
 */
public final class Qcow2Creator {
    private Qcow2Creator() {}

    /** Creation options (BlockdevCreateOptionsQcow2 subset). */
    public static final class Options {
        public long size;
        public int version = 3;
        public int clusterSize = 1 << DEFAULT_CLUSTER_BITS;
        public int refcountBits = 16;
        public boolean lazyRefcounts;
        public String backingFile;
        public String backingFormat;
        public PreallocMode preallocation = PreallocMode.OFF;

        public Options size(long v) { size = v; return this; }
        public Options version(int v) { version = v; return this; }
        public Options clusterSize(int v) { clusterSize = v; return this; }
        public Options refcountBits(int v) { refcountBits = v; return this; }
        public Options lazyRefcounts(boolean v) { lazyRefcounts = v; return this; }
        public Options backing(String file, String fmt) { backingFile = file; backingFormat = fmt; return this; }
        public Options preallocation(PreallocMode v) { preallocation = v; return this; }
    }

    /**
     * Writes the image through {@code file} (which must be writable and empty or overwritable).
     * Must run in a coroutine if the file node parks. Returns the length of the new image.
     */
    public static long create(BlockNode file, Options o) throws BlockException {
        if (o.version != 2 && o.version != 3) throw new BlockException(Errno.EINVAL, "Invalid compatibility level (version " + o.version + ")");
        if (Integer.bitCount(o.clusterSize) != 1 || o.clusterSize < 512 || o.clusterSize > (2 << 20)) {
            throw new BlockException(Errno.EINVAL, "Cluster size must be a power of two between 512 and 2048k");
        }
        if (Integer.bitCount(o.refcountBits) != 1 || o.refcountBits > 64) {
            throw new BlockException(Errno.EINVAL, "Refcount width must be a power of two and may not exceed 64 bits");
        }
        if (o.version == 2 && o.refcountBits != 16) {
            throw new BlockException(Errno.EINVAL, "Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)");
        }
        if (o.version == 2 && o.lazyRefcounts) {
            throw new BlockException(Errno.EINVAL, "Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)");
        }
        if (o.backingFormat != null && o.backingFile == null) {
            throw new BlockException(Errno.EINVAL, "Backing format cannot be used without backing file");
        }
        if (o.size < 0) throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        if (o.preallocation != PreallocMode.OFF && o.preallocation != PreallocMode.METADATA) {
            throw new BlockException(Errno.ENOTSUP, "Preallocation mode '" + o.preallocation + "' is not supported by Qcow2Creator");
        }
        int cb = Integer.numberOfTrailingZeros(o.clusterSize);
        int order = Integer.numberOfTrailingZeros(o.refcountBits);
        long cs = o.clusterSize;
        long l1Size = Qcow2Header.l1SizeFor(o.size, cb);
        if (l1Size * 8 > QCOW_MAX_L1_SIZE) throw new BlockException(Errno.EFBIG, "Image size is too big for this cluster size");
        long l1Clusters = Math.ceilDiv(l1Size * 8, cs);
        long l2Entries = cs / 8;
        boolean meta = o.preallocation == PreallocMode.METADATA;
        long dataClusters = meta ? Math.ceilDiv(o.size, cs) : 0;
        long l2Tables = meta ? Math.ceilDiv(dataClusters, l2Entries) : 0;
        long entries = Qcow2Layout.refblockEntries(cb, order);
        long rtC = 1, rbC = 1;
        for (int i = 0; i < 64; i++) {
            long total = 1 + rtC + rbC + l1Clusters + l2Tables + dataClusters;
            long nrb = Math.ceilDiv(total, entries);
            long nrt = Math.max(1, Math.ceilDiv(nrb * 8, cs));
            if (nrb == rbC && nrt == rtC) break;
            rbC = nrb;
            rtC = nrt;
        }
        if (rtC * cs > QCOW_MAX_REFTABLE_SIZE) throw new BlockException(Errno.EFBIG, "Image too large for its refcount table");
        long reftableOff = cs;
        long refblockOff = reftableOff + rtC * cs;
        long l1Off = refblockOff + rbC * cs;
        long areaOff = l1Off + l1Clusters * cs;
        long totalClusters = 1 + rtC + rbC + l1Clusters + l2Tables + dataClusters;

        Qcow2Header h = Qcow2Header.newHeader(o.version, cb, o.size, order);
        h.l1Size = (int) l1Size;
        h.l1TableOffset = l1Off;
        h.refcountTableOffset = reftableOff;
        h.refcountTableClusters = (int) rtC;
        if (o.lazyRefcounts) h.compatibleFeatures |= QCOW2_COMPAT_LAZY_REFCOUNTS;
        h.backingFile = o.backingFile;
        h.backingFormat = o.backingFormat;
        byte[] hb = h.serialize();

        try (NativeBuffer b = NativeBuffer.allocate(cs, 4096)) {
            // header cluster
            b.fill(0, cs, (byte) 0);
            b.copyFrom(hb, 0, 0, hb.length);
            write(file, 0, b, cs);
            // refcount table (rtC clusters)
            for (long c = 0; c < rtC; c++) {
                b.fill(0, cs, (byte) 0);
                for (long i = 0; i < cs / 8; i++) {
                    long idx = c * (cs / 8) + i;
                    if (idx < rbC) Qcow2Layout.putBE64(b.address() + i * 8, refblockOff + idx * cs);
                }
                write(file, reftableOff + c * cs, b, cs);
            }
            // refcount blocks: every cluster in [0, totalClusters) has refcount 1
            for (long r = 0; r < rbC; r++) {
                b.fill(0, cs, (byte) 0);
                for (long i = 0; i < entries; i++) {
                    long ci = r * entries + i;
                    if (ci >= totalClusters) break;
                    Qcow2Layout.setRefcount(b.address(), order, i, 1);
                }
                write(file, refblockOff + r * cs, b, cs);
            }
            // L2 tables and their data clusters (metadata preallocation)
            long[] l1 = new long[(int) l1Size];
            long next = areaOff;
            long mapped = 0;
            for (long t = 0; t < l2Tables; t++) {
                long l2Off = next;
                next += cs;
                b.fill(0, cs, (byte) 0);
                for (long i = 0; i < l2Entries && mapped < dataClusters; i++, mapped++) {
                    Qcow2Layout.putBE64(b.address() + i * 8, next | QCOW_OFLAG_COPIED);
                    next += cs;
                }
                write(file, l2Off, b, cs);
                l1[(int) t] = l2Off | QCOW_OFLAG_COPIED;
            }
            // L1 table: only its entries, as QEMU leaves the file ending right after them
            long written = 0;
            while (written < l1Size) {
                long n = Math.min(l1Size - written, cs / 8);
                b.fill(0, cs, (byte) 0);
                for (long i = 0; i < n; i++) Qcow2Layout.putBE64(b.address() + i * 8, l1[(int) (written + i)]);
                write(file, l1Off + written * 8, b, n * 8);
                written += n;
            }
            long end = meta ? totalClusters * cs : l1Off + l1Size * 8;
            if (end < 3 * cs) end = Math.max(end, l1Off); // an image of size 0 still ends after the refcount block
            long cur = file.getLength();
            if (cur >= 0 && cur < end) {
                int ret = file.truncate(end, false, PreallocMode.OFF, 0);
                if (ret < 0 && ret != -Errno.ENOTSUP) BlockException.check(ret, "Could not resize the image file");
            }
            BlockException.check(file.flush(), "Could not flush the new image");
            return end;
        }
    }

    private static void write(BlockNode file, long off, NativeBuffer b, long len) throws BlockException {
        BlockException.check(file.pwritev(off, len, IoVector.of(b.address(), len), 0, 0), "Could not write the new image at offset " + off);
    }
}
