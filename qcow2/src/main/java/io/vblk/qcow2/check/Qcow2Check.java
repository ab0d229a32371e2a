package io.vblk.qcow2.check;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.Errno;
import io.vblk.qcow2.Qcow2Header;
import io.vblk.qcow2.Qcow2Layout;
import io.vblk.qcow2.Qcow2Layout.ClusterType;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The qcow2 consistency checker and repairer, working on the file directly and independent of the
 * driver's caches. Corresponds to QEMU's qcow2_co_check_locked with qcow2_check_refcounts,
 * calculate_refcounts, check_refcounts_l1/l2, check_refblocks, compare_refcounts and
 * check_oflag_copied (block/qcow2-refcount.c); rebuilding is {@link RefcountRebuild}.
 *
 * <p>It counts the references to every host cluster (header, active L1, every L2 table, data
 * clusters, every host cluster a compressed cluster touches, snapshot table, each snapshot's L1
 * and L2 tables, refcount table and blocks) in memory, compares them with the stored refcounts,
 * and checks the COPIED flags against the stored refcounts. Messages are QEMU 7.2's, one per line,
 * on {@code log}. The image is hostile: the in-memory table is sized by the file length only,
 * every table read is bounded by validated sizes, and every loop is bounded by table sizes.
 *
 * <p>Nothing is written unless {@code fix} is non-zero. Must run in a coroutine when the
 * {@link CheckFile} is a block node.
 */
public final class Qcow2Check {
    /** Repair leaks (BDRV_FIX_LEAKS). */
    public static final int FIX_LEAKS = 1;
    /** Repair errors (BDRV_FIX_ERRORS), including a refcount structure rebuild. */
    public static final int FIX_ERRORS = 2;

    private static final int MAX_SNAPSHOT_EXTRA_DATA = 1024;
    private static final int SNAPSHOT_HEADER_SIZE = 40;

    /** One snapshot table entry, as far as the check needs it. */
    record Snapshot(String id, String name, long l1Offset, long l1Size) {}

    private final CheckFile file;
    private final Qcow2Header h;
    private final PrintStream log;
    private final int cb;
    private final int cs;
    private final int order;
    private final long maxRef;

    private long fileLen;
    /** Counted references per host cluster (the in-memory refcount table). */
    private int[] refs = new int[0];
    /** Logical length of {@link #refs}. */
    private long nb;
    /** The stored refcount table. */
    private long[] reftable = new long[0];
    private List<Snapshot> snapshots = new ArrayList<>();
    private long snapshotsSize;
    private long[] activeL1 = new long[0];

    // the one cached refcount block (read for compare, written when fixing)
    private long rbOffset = -1;
    private final byte[] rb;
    private boolean rbDirty;

    private Qcow2Check(CheckFile file, Qcow2Header h, PrintStream log) {
        this.file = file;
        this.h = h;
        this.log = log;
        this.cb = h.clusterBits;
        this.cs = 1 << cb;
        this.order = h.refcountOrder;
        this.maxRef = Math.min(Qcow2Layout.maxRefcount(order), Integer.MAX_VALUE);
        this.rb = new byte[cs];
    }

    /**
     * Checks (and with {@code fix}, repairs) the image whose header was parsed from {@code file};
     * the header object is updated if a repair moves the refcount table or clears the dirty or
     * corrupt bit. QEMU's qcow2_co_check_locked.
     */
    public static CheckResult check(CheckFile file, Qcow2Header h, int fix, PrintStream log) {
        Qcow2Check c = new Qcow2Check(file, h, log);
        CheckResult result = new CheckResult();
        if (fix != 0 && !file.writable()) {
            log.println("qemu-img: Cannot repair an image opened read-only");
            result.checkErrors++;
            return result;
        }
        if ((h.incompatibleFeatures & (QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_EXTL2)) != 0) {
            log.println("ERROR: images with an external data file or extended L2 entries cannot be checked by vblk yet");
            result.checkErrors++;
            return result;
        }
        if (fix != 0 && hasValidBitmaps(h)) {
            // their tables and data clusters are not counted here: a repair would free them
            log.println("ERROR: images with persistent bitmaps cannot be repaired by vblk yet; use 'qemu-img check -r all'");
            result.checkErrors++;
            return result;
        }
        CheckResult snap = new CheckResult();
        int ret = c.readSnapshotTable(snap);
        if (ret < 0) {
            result.checkErrors++;
            return result;
        }
        CheckResult rc = new CheckResult();
        ret = c.checkRefcounts(rc, fix);
        c.flushRefblock(rc);
        result.add(rc, true);
        result.add(snap, false);
        if (ret < 0) return result;
        if (fix != 0 && result.checkErrors == 0 && result.corruptions == 0) {
            ret = c.markCleanAndConsistent();
            if (ret < 0) {
                log.println("ERROR: could not clear the dirty and corrupt bits: " + Errno.describe(-ret));
                result.checkErrors++;
            }
        }
        return result;
    }

    /** Reads the header from {@code file} and checks without repairing. */
    public static CheckResult check(CheckFile file, PrintStream log) throws BlockException {
        return check(file, readHeader(file), 0, log);
    }

    /**
     * Repairs an image whose dirty bit is set (lazy refcounts after an unclean shutdown) before
     * it is used read-write, as QEMU's qcow2_do_open does with BDRV_FIX_ERRORS | BDRV_FIX_LEAKS:
     * rebuilds or fixes the refcounts, fixes the COPIED flags, then clears the dirty bit (on disk
     * and in {@code h}). Messages are discarded (the first ERROR line goes into the exception).
     * Call from a coroutine on the file node's context; a rebuild moves the refcount table, so the
     * caller must take its location from the header afterwards and reload its tables (the qcow2
     * driver does, in {@code Qcow2Driver.repairDirty}).
     *
     * @throws BlockException (EIO) when the image could not be made consistent, (ENOTSUP) when it
     *     has valid persistent bitmaps
     */
    public static CheckResult repairDirty(BlockNode file, Qcow2Header h) throws BlockException {
        if (hasValidBitmaps(h)) {
            throw new BlockException(Errno.ENOTSUP, "Could not repair dirty image: it has persistent bitmaps, which vblk"
                    + " cannot account for yet; run 'qemu-img check -r all'");
        }
        CheckFile f = CheckFile.of(file);
        ByteArrayOutputStream messages = new ByteArrayOutputStream();
        try {
            CheckResult r = check(f, h, FIX_LEAKS | FIX_ERRORS, new PrintStream(messages, true, StandardCharsets.UTF_8));
            if (r.checkErrors != 0 || r.corruptions != 0) {
                String first = messages.toString(StandardCharsets.UTF_8).lines()
                        .filter(l -> l.contains("ERROR")).findFirst().orElse("");
                throw new BlockException(Errno.EIO, "Could not repair dirty image: " + r.corruptions
                        + " corruptions and " + r.checkErrors + " check errors remain" + (first.isEmpty() ? "" : " (" + first + ")"));
            }
            return r;
        } finally {
            f.close();
        }
    }

    /**
     * Whether the image carries persistent bitmaps that are still valid (bitmaps extension present
     * and the bitmaps autoclear bit set). Their directory, tables and data clusters are referenced
     * only from the extension, which this checker does not walk (QEMU's
     * qcow2_check_bitmaps_refcounts), so repairing would free them. With the autoclear bit clear
     * the bitmaps are stale by the spec and their clusters really are leaks.
     */
    static boolean hasValidBitmaps(Qcow2Header h) {
        if ((h.autoclearFeatures & QCOW2_AUTOCLEAR_BITMAPS) == 0) return false;
        for (Qcow2Header.Extension e : h.otherExtensions) {
            if (e.type() == QCOW2_EXT_MAGIC_BITMAPS) return true;
        }
        return false;
    }

    /** Reads and parses the header in cluster 0 (at most 2 MiB). */
    public static Qcow2Header readHeader(CheckFile file) throws BlockException {
        long len = file.length();
        if (len < 0) throw new BlockException((int) -len, "Could not get the file length: " + Errno.describe((int) -len));
        int n = (int) Math.min(len, 1 << MAX_CLUSTER_BITS);
        byte[] buf = new byte[n];
        int r = file.read(0, buf, 0, n);
        if (r < 0) throw new BlockException(-r, "Could not read the qcow2 header: " + Errno.describe(-r));
        // like QEMU, tables reaching past the end of the file are not refused here: they read as
        // zeros and the check reports them (and -r all rebuilds a lost refcount table); their
        // sizes are already bounded by parse (L1 <= 32 MiB, refcount table <= 8 MiB)
        return Qcow2Header.parse(buf);
    }

    // ---------------------------------------------------------------- snapshot table

    /** Reads the snapshot table entries the check needs (qcow2_read_snapshots in check mode). */
    private int readSnapshotTable(CheckResult res) {
        int n = h.nbSnapshots;
        if (n == 0) return 0;
        long off = h.snapshotsOffset;
        byte[] hdr = new byte[SNAPSHOT_HEADER_SIZE];
        List<Snapshot> list = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            off = (off + 7) & ~7L;
            int r = file.read(off, hdr, 0, SNAPSHOT_HEADER_SIZE);
            if (r < 0) {
                log.println("ERROR: could not read the snapshot table: " + Errno.describe(-r));
                return r;
            }
            long l1Off = RefcountCodec.getBE64(hdr, 0);
            long l1Size = (RefcountCodec.getBE64(hdr, 8) >>> 32);
            int idLen = ((hdr[12] & 0xff) << 8) | (hdr[13] & 0xff);
            int nameLen = ((hdr[14] & 0xff) << 8) | (hdr[15] & 0xff);
            long extra = RefcountCodec.getBE64(hdr, 32) & 0xffffffffL;
            off += SNAPSHOT_HEADER_SIZE;
            if (extra > MAX_SNAPSHOT_EXTRA_DATA) {
                log.println("ERROR: Too much extra metadata in snapshot table entry " + i);
                return -Errno.EFBIG;
            }
            off += extra;
            byte[] s = new byte[idLen + nameLen];
            r = file.read(off, s, 0, s.length);
            if (r < 0) {
                log.println("ERROR: could not read the snapshot table: " + Errno.describe(-r));
                return r;
            }
            off += s.length;
            if (off - h.snapshotsOffset > QCOW_MAX_SNAPSHOTS_SIZE) {
                log.println("ERROR: Snapshot table is too big");
                return -Errno.EFBIG;
            }
            list.add(new Snapshot(new String(s, 0, idLen, java.nio.charset.StandardCharsets.UTF_8),
                    new String(s, idLen, nameLen, java.nio.charset.StandardCharsets.UTF_8), l1Off, l1Size));
        }
        snapshots = list;
        snapshotsSize = off - h.snapshotsOffset;
        return 0;
    }

    // ---------------------------------------------------------------- refcounts

    /** qcow2_check_refcounts. */
    private int checkRefcounts(CheckResult res, int fix) {
        fileLen = file.length();
        if (fileLen < 0) {
            res.checkErrors++;
            log.println("ERROR: could not get the file length: " + Errno.describe((int) -fileLen));
            return (int) fileLen;
        }
        long clusters = (fileLen + cs - 1) >>> cb;
        if (clusters > Integer.MAX_VALUE - 16) {
            res.checkErrors++;
            log.println("ERROR: the file is too large to check (" + clusters + " clusters)");
            return -Errno.EFBIG;
        }
        if ((clusters + 1) * 4 > Runtime.getRuntime().maxMemory() / 2) {
            res.checkErrors++;
            log.println("ERROR: not enough memory to check " + clusters + " clusters: " + Errno.describe(Errno.ENOMEM));
            return -Errno.ENOMEM;
        }
        res.totalClusters = (h.size + cs - 1) >>> cb;
        int r = loadReftable(res);
        if (r < 0) return r;
        try {
            long inside = h.l1TableOffset >= fileLen ? 0 : Math.min(h.l1Size, (fileLen - h.l1TableOffset) / 8);
            activeL1 = readTable(h.l1TableOffset, inside);
        } catch (IoError e) {
            // reported by check_refcounts_l1 below
            activeL1 = null;
        }

        boolean[] rebuild = {false};
        long[] highest = {0};
        r = calculateRefcounts(res, fix, rebuild);
        if (r < 0) return r;
        CheckResult pre = res.copy();
        compareRefcounts(res, 0, rebuild, highest);

        if (rebuild[0] && (fix & FIX_ERRORS) != 0) {
            CheckResult old = res.copy();
            long freshLeaks = 0;
            log.println("Rebuilding refcount structure");
            flushRefblock(res);
            RefcountRebuild rb = new RefcountRebuild(file, h, log, refs, nb);
            r = rb.run();
            if (r < 0) {
                res.checkErrors++;
                return r;
            }
            res.corruptions = 0;
            res.leaks = 0;
            rbOffset = -1;
            r = loadReftable(res);
            if (r < 0) return r;
            fileLen = file.length();
            if (fileLen < 0) {
                res.checkErrors++;
                return (int) fileLen;
            }
            rebuild[0] = false;
            r = calculateRefcounts(res, 0, rebuild);
            if (r < 0) return r;
            if ((fix & FIX_LEAKS) != 0) {
                CheckResult saved = res.copy();
                CheckResult fresh = new CheckResult();
                compareRefcounts(fresh, FIX_LEAKS, rebuild, highest);
                if (rebuild[0]) log.println("ERROR rebuilt refcount structure is still broken");
                freshLeaks = fresh.leaks;
                res = copyInto(res, saved);
            }
            if (res.corruptions < old.corruptions) res.corruptionsFixed += old.corruptions - res.corruptions;
            if (res.leaks < old.leaks) res.leaksFixed += old.leaks - res.leaks;
            res.leaks += freshLeaks;
        } else if (fix != 0) {
            if (rebuild[0]) {
                log.println("ERROR need to rebuild refcount structures");
                res.checkErrors++;
                return -Errno.EIO;
            }
            if (res.leaks != 0 || res.corruptions != 0) {
                copyInto(res, pre);
                compareRefcounts(res, fix, rebuild, highest);
            }
        }
        flushRefblock(res);
        r = checkOflagCopied(res, fix);
        if (r < 0) return r;
        res.imageEndOffset = (highest[0] + 1) << cb;
        return 0;
    }

    private static CheckResult copyInto(CheckResult dst, CheckResult src) {
        dst.checkErrors = src.checkErrors;
        dst.corruptions = src.corruptions;
        dst.leaks = src.leaks;
        dst.corruptionsFixed = src.corruptionsFixed;
        dst.leaksFixed = src.leaksFixed;
        dst.imageEndOffset = src.imageEndOffset;
        dst.totalClusters = src.totalClusters;
        dst.allocatedClusters = src.allocatedClusters;
        dst.fragmentedClusters = src.fragmentedClusters;
        dst.compressedClusters = src.compressedClusters;
        return dst;
    }

    private int loadReftable(CheckResult res) {
        long entries = ((long) h.refcountTableClusters << cb) / 8;
        try {
            reftable = readTable(h.refcountTableOffset, entries);
            return 0;
        } catch (IoError e) {
            log.println("ERROR: could not read the refcount table: " + Errno.describe(-e.errno));
            res.checkErrors++;
            return e.errno;
        }
    }

    /** An I/O error while reading a table, carrying the negative errno. */
    private static final class IoError extends Exception {
        final int errno;

        IoError(int errno) {
            super(null, null, false, false);
            this.errno = errno;
        }
    }

    /** Reads {@code entries} big-endian u64 (bounded by the caller's validated limits). */
    private long[] readTable(long offset, long entries) throws IoError {
        long[] t = new long[(int) entries];
        byte[] buf = new byte[(int) Math.min(entries * 8, 1 << 20)];
        long done = 0;
        while (done < entries) {
            int n = (int) Math.min(entries - done, buf.length / 8);
            int r = file.read(offset + done * 8, buf, 0, n * 8);
            if (r < 0) throw new IoError(r);
            for (int i = 0; i < n; i++) t[(int) (done + i)] = RefcountCodec.getBE64(buf, i * 8);
            done += n;
        }
        return t;
    }

    /** calculate_refcounts: counts every reference into {@link #refs}. */
    private int calculateRefcounts(CheckResult res, int fix, boolean[] rebuild) {
        long clusters = (fileLen + cs - 1) >>> cb;
        refs = new int[(int) clusters + 1];
        nb = clusters;
        incRefcounts(res, 0, cs);
        int r = checkRefcountsL1(res, h.l1TableOffset, h.l1Size, true, true);
        if (r < 0) return r;
        for (Snapshot sn : snapshots) {
            if ((sn.l1Offset & (cs - 1)) != 0) {
                log.printf("ERROR snapshot %s (%s) l1_offset=%#x: L1 table is not cluster aligned; snapshot table entry corrupted%n",
                        sn.id, sn.name, sn.l1Offset);
                res.corruptions++;
                continue;
            }
            if (sn.l1Size > QCOW_MAX_L1_SIZE / 8) {
                log.printf("ERROR snapshot %s (%s) l1_size=%#x: L1 table is too large; snapshot table entry corrupted%n",
                        sn.id, sn.name, sn.l1Size);
                res.corruptions++;
                continue;
            }
            if (sn.l1Offset < 0 || sn.l1Offset > QCOW_MAX_CLUSTER_OFFSET) {
                log.printf("ERROR snapshot %s (%s) l1_offset=%#x: L1 table offset invalid; snapshot table entry corrupted%n",
                        sn.id, sn.name, sn.l1Offset);
                res.corruptions++;
                continue;
            }
            r = checkRefcountsL1(res, sn.l1Offset, sn.l1Size, false, false);
            if (r < 0) return r;
        }
        incRefcounts(res, h.snapshotsOffset, snapshotsSize);
        incRefcounts(res, h.refcountTableOffset, (long) h.refcountTableClusters << cb);
        return checkRefblocks(res, fix, rebuild);
    }

    /** qcow2_inc_refcounts_imrt: one more reference to each cluster touched by [offset, offset+size). */
    private void incRefcounts(CheckResult res, long offset, long size) {
        if (size <= 0) return;
        if (offset < 0 || offset > QCOW_MAX_CLUSTER_OFFSET || offset + size - fileLen >= cs) {
            log.printf("ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x%x size 0x%x%n",
                    offset, size);
            res.corruptions++;
            return;
        }
        long first = offset >>> cb;
        long last = (offset + size - 1) >>> cb;
        for (long c = first; c <= last; c++) {
            // c < file clusters + 1 by the check above; refs has that room
            if (c >= nb) nb = c + 1;
            int i = (int) c;
            if (refs[i] >= maxRef) {
                log.printf("ERROR: overflow cluster offset=0x%x%n", c << cb);
                res.corruptions++;
            } else {
                refs[i]++;
            }
        }
    }

    /** check_refcounts_l1. */
    private int checkRefcountsL1(CheckResult res, long l1Offset, long l1Size, boolean fragInfo, boolean active) {
        if (l1Size == 0) return 0;
        incRefcounts(res, l1Offset, l1Size * 8);
        long[] l1;
        if (active && activeL1 != null) {
            l1 = activeL1;
        } else {
            try {
                // entries past the end of the file read as zero and reference nothing: read only
                // the part inside the file, so a hostile l1_size costs no memory or time
                long inside = l1Offset >= fileLen ? 0 : Math.min(l1Size, (fileLen - l1Offset) / 8);
                l1 = readTable(l1Offset, inside);
            } catch (IoError e) {
                log.println("ERROR: I/O error in check_refcounts_l1");
                res.checkErrors++;
                return e.errno;
            }
        }
        byte[] l2 = new byte[cs];
        for (long e : l1) {
            if (e == 0) continue;
            if ((e & L1E_RESERVED_MASK) != 0) {
                log.printf("ERROR found L1 entry with reserved bits set: %x%n", e);
                res.corruptions++;
            }
            long l2Offset = e & L1E_OFFSET_MASK;
            incRefcounts(res, l2Offset, cs);
            if ((l2Offset & (cs - 1)) != 0) {
                log.printf("ERROR l2_offset=%x: Table is not cluster aligned; L1 entry corrupted%n", l2Offset);
                res.corruptions++;
            }
            int r = checkRefcountsL2(res, l2Offset, l2, fragInfo);
            if (r < 0) return r;
        }
        return 0;
    }

    /** check_refcounts_l2 (standard 8-byte entries). */
    private int checkRefcountsL2(CheckResult res, long l2Offset, byte[] l2, boolean fragInfo) {
        int r = file.read(l2Offset, l2, 0, cs);
        if (r < 0) {
            log.println("ERROR: I/O error in check_refcounts_l2");
            res.checkErrors++;
            return r;
        }
        long nextContiguous = 0;
        int entries = cs / 8;
        for (int i = 0; i < entries; i++) {
            long e = RefcountCodec.getBE64(l2, i * 8);
            if (e == 0) continue;
            ClusterType type = Qcow2Layout.clusterType(e, h.version);
            if (type != ClusterType.COMPRESSED) {
                if ((e & L2E_STD_RESERVED_MASK) != 0) {
                    log.printf("ERROR found l2 entry with reserved bits set: %x%n", e);
                    res.corruptions++;
                }
                if (h.version < 3 && (e & QCOW_OFLAG_ZERO) != 0) {
                    log.printf("ERROR found zero cluster flag in a version 2 image: l2 entry %x%n", e);
                    res.corruptions++;
                }
            }
            switch (type) {
                case COMPRESSED -> {
                    if ((e & QCOW_OFLAG_COPIED) != 0) {
                        log.printf("ERROR: coffset=0x%x: copied flag must never be set for compressed clusters%n",
                                Qcow2Layout.compressedOffset(e, cb));
                        e &= ~QCOW_OFLAG_COPIED;
                        res.corruptions++;
                    }
                    long coff = Qcow2Layout.compressedOffset(e, cb);
                    int csize = Qcow2Layout.compressedSize(e, cb);
                    incRefcounts(res, coff, csize);
                    if (fragInfo) {
                        res.allocatedClusters++;
                        res.compressedClusters++;
                        res.fragmentedClusters++;
                    }
                }
                case ZERO_ALLOC, NORMAL -> {
                    long off = e & L2E_OFFSET_MASK;
                    if ((off & (cs - 1)) != 0) {
                        res.corruptions++;
                        if (type == ClusterType.ZERO_ALLOC) {
                            log.printf("ERROR offset=%x: Preallocated cluster is not properly aligned; L2 entry corrupted.%n", off);
                        } else {
                            log.printf("ERROR offset=%x: Data cluster is not properly aligned; L2 entry corrupted.%n", off);
                        }
                    }
                    if (fragInfo) {
                        res.allocatedClusters++;
                        if (nextContiguous != 0 && off != nextContiguous) res.fragmentedClusters++;
                        nextContiguous = off + cs;
                    }
                    incRefcounts(res, off, cs);
                }
                default -> { }
            }
        }
        return 0;
    }

    /** check_refblocks. */
    private int checkRefblocks(CheckResult res, int fix, boolean[] rebuild) {
        for (int i = 0; i < reftable.length; i++) {
            long e = reftable[i];
            long off = e & REFT_OFFSET_MASK;
            if ((e & REFT_RESERVED_MASK) != 0) {
                log.printf("ERROR refcount table entry %d has reserved bits set%n", i);
                res.corruptions++;
                rebuild[0] = true;
                continue;
            }
            if ((off & (cs - 1)) != 0) {
                log.printf("ERROR refcount block %d is not cluster aligned; refcount table entry corrupted%n", i);
                res.corruptions++;
                rebuild[0] = true;
                continue;
            }
            long cluster = off >>> cb;
            if (Long.compareUnsigned(cluster, nb) >= 0) {
                res.corruptions++;
                log.printf("%s refcount block %d is outside image%n", (fix & FIX_ERRORS) != 0 ? "Repairing" : "ERROR", i);
                // we repair by rebuilding the structure without it (no file growth to a hostile offset)
                if ((fix & FIX_ERRORS) != 0) rebuild[0] = true;
                continue;
            }
            if (off != 0) {
                incRefcounts(res, off, cs);
                if (refs[(int) cluster] != 1) {
                    log.printf("ERROR refcount block %d refcount=%d%n", i, refs[(int) cluster]);
                    res.corruptions++;
                    rebuild[0] = true;
                }
            }
        }
        return 0;
    }

    /** Stored refcount of a cluster, or a negative errno (qcow2_get_refcount). */
    private long storedRefcount(long cluster) {
        long idx = cluster >>> (cb + 3 - order);
        if (idx >= reftable.length) return 0;
        long off = reftable[(int) idx] & REFT_OFFSET_MASK;
        if (off == 0) return 0;
        if ((off & (cs - 1)) != 0 || off < 0 || off > QCOW_MAX_CLUSTER_OFFSET) return -Errno.EIO;
        int r = loadRefblock(off);
        if (r < 0) return r;
        int within = (int) (cluster & ((1L << (cb + 3 - order)) - 1));
        return RefcountCodec.get(rb, order, within);
    }

    private int loadRefblock(long off) {
        if (off == rbOffset) return 0;
        int r = writeRefblock();
        if (r < 0) return r;
        r = file.read(off, rb, 0, cs);
        if (r < 0) {
            rbOffset = -1;
            return r;
        }
        rbOffset = off;
        return 0;
    }

    private int writeRefblock() {
        if (!rbDirty) return 0;
        int r = file.write(rbOffset, rb, 0, cs);
        if (r < 0) return r;
        rbDirty = false;
        return 0;
    }

    private void flushRefblock(CheckResult res) {
        int r = writeRefblock();
        if (r < 0) {
            log.println("ERROR: could not write a refcount block: " + Errno.describe(-r));
            res.checkErrors++;
            rbDirty = false;
            rbOffset = -1;
        }
    }

    /** Sets a stored refcount whose refcount block exists (update_refcount for the check's fixes). */
    private int setStoredRefcount(long cluster, long value) {
        long idx = cluster >>> (cb + 3 - order);
        long off = reftable[(int) idx] & REFT_OFFSET_MASK;
        if (off == 0 || (off & (cs - 1)) != 0 || isMetadataOverlap(off, false)) return -Errno.EIO;
        int r = loadRefblock(off);
        if (r < 0) return r;
        int within = (int) (cluster & ((1L << (cb + 3 - order)) - 1));
        RefcountCodec.set(rb, order, within, value);
        rbDirty = true;
        return 0;
    }

    /** compare_refcounts. */
    private void compareRefcounts(CheckResult res, int fix, boolean[] rebuild, long[] highest) {
        for (long i = 0; i < nb; i++) {
            long stored = storedRefcount(i);
            if (stored < 0) {
                log.printf("Can't get refcount for cluster %d: %s%n", i, Errno.describe((int) -stored));
                res.checkErrors++;
                continue;
            }
            long counted = refs[(int) i];
            if (stored > 0 || counted > 0) highest[0] = i;
            if (stored == counted) continue;
            boolean leak = stored > counted;
            boolean fixing = false;
            if (stored == 0) {
                rebuild[0] = true;
            } else if (leak && (fix & FIX_LEAKS) != 0) {
                fixing = true;
            } else if (!leak && (fix & FIX_ERRORS) != 0) {
                fixing = true;
            }
            log.printf("%s cluster %d refcount=%d reference=%d%n",
                    fixing ? "Repairing" : leak ? "Leaked" : "ERROR", i, stored, counted);
            if (fixing && setStoredRefcount(i, counted) >= 0) {
                if (leak) res.leaksFixed++;
                else res.corruptionsFixed++;
                continue;
            }
            if (leak) res.leaks++;
            else res.corruptions++;
        }
    }

    /** check_oflag_copied. */
    private int checkOflagCopied(CheckResult res, int fix) {
        boolean repair;
        if ((fix & FIX_ERRORS) != 0) {
            repair = true;
        } else if ((fix & FIX_LEAKS) != 0) {
            repair = res.checkErrors == 0 && res.corruptions == 0 && res.leaks == 0;
        } else {
            repair = false;
        }
        if (activeL1 == null) return 0;
        byte[] l2 = new byte[cs];
        byte[] entry = new byte[8];
        for (int i = 0; i < activeL1.length; i++) {
            long l1e = activeL1[i];
            long l2Offset = l1e & L1E_OFFSET_MASK;
            if (l2Offset == 0) continue;
            long rc = storedRefcount(l2Offset >>> cb);
            if (rc < 0) continue;
            if ((rc == 1) != ((l1e & QCOW_OFLAG_COPIED) != 0)) {
                res.corruptions++;
                log.printf("%s OFLAG_COPIED L2 cluster: l1_index=%d l1_entry=%x refcount=%d%n",
                        repair ? "Repairing" : "ERROR", i, l1e, rc);
                if (repair) {
                    long ne = rc == 1 ? l1e | QCOW_OFLAG_COPIED : l1e & ~QCOW_OFLAG_COPIED;
                    RefcountCodec.putBE64(entry, 0, ne);
                    int r = file.write(h.l1TableOffset + 8L * i, entry, 0, 8);
                    if (r < 0) {
                        log.println("ERROR: could not write an L1 entry: " + Errno.describe(-r));
                        res.checkErrors++;
                        return r;
                    }
                    activeL1[i] = ne;
                    res.corruptions--;
                    res.corruptionsFixed++;
                }
            }
            int r = file.read(l2Offset, l2, 0, cs);
            if (r < 0) {
                log.println("ERROR: Could not read L2 table: " + Errno.describe(-r));
                res.checkErrors++;
                return r;
            }
            int dirty = 0;
            for (int j = 0; j < cs / 8; j++) {
                long e = RefcountCodec.getBE64(l2, j * 8);
                ClusterType t = Qcow2Layout.clusterType(e, h.version);
                if (t != ClusterType.NORMAL && t != ClusterType.ZERO_ALLOC) continue;
                long drc = storedRefcount((e & L2E_OFFSET_MASK) >>> cb);
                if (drc < 0) continue;
                if ((drc == 1) != ((e & QCOW_OFLAG_COPIED) != 0)) {
                    res.corruptions++;
                    log.printf("%s OFLAG_COPIED data cluster: l2_entry=%x refcount=%d%n", repair ? "Repairing" : "ERROR", e, drc);
                    if (repair) {
                        RefcountCodec.putBE64(l2, j * 8, drc == 1 ? e | QCOW_OFLAG_COPIED : e & ~QCOW_OFLAG_COPIED);
                        dirty++;
                    }
                }
            }
            if (dirty > 0) {
                if ((l2Offset & (cs - 1)) != 0 || isMetadataOverlap(l2Offset, true)) {
                    log.println("ERROR: Could not write L2 table; metadata overlap check failed: " + Errno.describe(Errno.EIO));
                    res.checkErrors++;
                    return -Errno.EIO;
                }
                r = file.write(l2Offset, l2, 0, cs);
                if (r < 0) {
                    log.println("ERROR: Could not write L2 table: " + Errno.describe(-r));
                    res.checkErrors++;
                    return r;
                }
                res.corruptions -= dirty;
                res.corruptionsFixed += dirty;
            }
        }
        return 0;
    }

    /**
     * Whether writing the cluster at {@code off} would hit the header, the active L1 table, the
     * refcount table, a refcount block (or, when {@code asL2}, nothing else that is metadata but
     * itself). The check's own overlap guard before repair writes.
     */
    private boolean isMetadataOverlap(long off, boolean asL2) {
        long end = off + cs;
        if (off < cs) return true;
        long l1Bytes = (long) h.l1Size * 8;
        if (l1Bytes > 0 && off < h.l1TableOffset + l1Bytes && h.l1TableOffset < end) return true;
        long rtBytes = (long) h.refcountTableClusters << cb;
        if (off < h.refcountTableOffset + rtBytes && h.refcountTableOffset < end) return true;
        if (asL2) {
            for (long e : reftable) {
                long rbo = e & REFT_OFFSET_MASK;
                if (rbo != 0 && rbo == off) return true;
            }
        }
        return false;
    }

    /** qcow2_mark_clean + qcow2_mark_consistent: clears the dirty and corrupt bits after a flush. */
    private int markCleanAndConsistent() {
        long bits = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT;
        if (h.version < 3 || (h.incompatibleFeatures & bits) == 0) return 0;
        int r = file.flush();
        if (r < 0) return r;
        long v = h.incompatibleFeatures & ~bits;
        byte[] b = new byte[8];
        RefcountCodec.putBE64(b, 0, v);
        r = file.write(OFF_INCOMPATIBLE_FEATURES, b, 0, 8);
        if (r < 0) return r;
        r = file.flush();
        if (r < 0) return r;
        h.incompatibleFeatures = v;
        return 0;
    }

    /** For tests: the snapshots read from the table. */
    List<Snapshot> snapshots() {
        return snapshots;
    }
}
