package io.vblk.qcow2.check;

import static io.vblk.qcow2.Qcow2Constants.*;
import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.BlockException;
import io.vblk.qcow2.Qcow2Header;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * The checker on hand-crafted images (4 KiB clusters, 16 MiB disk): header in cluster 0,
 * reftable 1, refblock 2, L1 3, L2 4, data 5 and 6. Each test damages one thing, checks the
 * counters and messages QEMU 7.2 gives for it, and where a repair exists, repairs and re-checks.
 */
class Qcow2CheckTest {
    static final int CB = 12;
    static final int CS = 1 << CB;

    ByteArrayOutputStream logBytes = new ByteArrayOutputStream();
    PrintStream log = new PrintStream(logBytes, true);

    static byte[] cleanImage() throws BlockException {
        byte[] img = new byte[7 * CS];
        Qcow2Header h = Qcow2Header.newHeader(3, CB, 16 << 20, 4);
        h.l1Size = (int) Qcow2Header.l1SizeFor(h.size, CB);
        h.l1TableOffset = 3L * CS;
        h.refcountTableOffset = CS;
        h.refcountTableClusters = 1;
        byte[] hb = h.serialize();
        System.arraycopy(hb, 0, img, 0, hb.length);
        ByteBuffer b = ByteBuffer.wrap(img);
        b.putLong(CS, 2L * CS);                                       // reftable[0] -> refblock
        for (int c = 0; c < 7; c++) b.putShort(2 * CS + 2 * c, (short) 1);
        b.putLong(3 * CS, 4L * CS | QCOW_OFLAG_COPIED);               // L1[0] -> L2
        b.putLong(4 * CS, 5L * CS | QCOW_OFLAG_COPIED);               // L2[0] -> data 5
        b.putLong(4 * CS + 8, 6L * CS | QCOW_OFLAG_COPIED);           // L2[1] -> data 6
        return img;
    }

    static void setRefcount(byte[] img, int cluster, int v) {
        ByteBuffer.wrap(img).putShort(2 * CS + 2 * cluster, (short) v);
    }

    CheckResult check(ArrayCheckFile f, int fix) throws BlockException {
        return Qcow2Check.check(f, Qcow2Check.readHeader(f), fix, log);
    }

    String log() {
        return logBytes.toString();
    }

    @Test
    void cleanImageHasNoErrors() throws Exception {
        ArrayCheckFile f = new ArrayCheckFile(cleanImage());
        CheckResult r = check(f, 0);
        assertEquals(0, r.exitCode(), log());
        assertEquals(2, r.allocatedClusters);
        assertEquals(4096, r.totalClusters);
        assertEquals(7L * CS, r.imageEndOffset);
        assertEquals(0, r.fragmentedClusters);
        assertEquals("", log());
        assertEquals(0, f.writes);
    }

    @Test
    void leakIsReportedAndRepairedWithLeaks() throws Exception {
        byte[] img = Arrays.copyOf(cleanImage(), 8 * CS);
        setRefcount(img, 7, 2);
        ArrayCheckFile f = new ArrayCheckFile(img);
        CheckResult r = check(f, 0);
        assertEquals(1, r.leaks);
        assertEquals(3, r.exitCode());
        assertTrue(log().contains("Leaked cluster 7 refcount=2 reference=0"), log());
        assertEquals(0, f.writes, "check without -r never writes");

        r = check(f, Qcow2Check.FIX_LEAKS);
        assertEquals(1, r.leaksFixed);
        assertTrue(log().contains("Repairing cluster 7 refcount=2 reference=0"), log());
        assertEquals(0, check(f, 0).exitCode());
    }

    @Test
    void refcountTooLowIsAnErrorAndRebuildFixesIt() throws Exception {
        byte[] img = cleanImage();
        setRefcount(img, 5, 0);
        ArrayCheckFile f = new ArrayCheckFile(img);
        byte[] before = f.data.clone();
        CheckResult r = check(f, 0);
        assertEquals(2, r.exitCode());
        assertEquals(2, r.corruptions);
        assertTrue(log().contains("ERROR cluster 5 refcount=0 reference=1"), log());
        assertTrue(log().contains("ERROR OFLAG_COPIED data cluster: l2_entry=8000000000005000 refcount=0"), log());
        assertArrayEquals(before, f.data, "check without -r never writes");

        // -r leaks cannot fix a refcount of 0 (needs a rebuild)
        r = check(f, Qcow2Check.FIX_LEAKS);
        assertEquals(1, r.exitCode());
        assertTrue(log().contains("ERROR need to rebuild refcount structures"), log());

        r = check(f, Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS);
        assertTrue(log().contains("Rebuilding refcount structure"), log());
        assertTrue(r.corruptionsFixed > 0);
        CheckResult again = check(f, 0);
        assertEquals(0, again.exitCode(), log());
        // new structures were placed after the old end of the file, and the header switched to them
        Qcow2Header h = Qcow2Check.readHeader(f);
        assertTrue(h.refcountTableOffset >= 7L * CS, "new reftable at 0x" + Long.toHexString(h.refcountTableOffset));
    }

    @Test
    void copiedFlagMismatchIsReportedAndRepaired() throws Exception {
        byte[] img = cleanImage();
        ByteBuffer.wrap(img).putLong(4 * CS, 5L * CS);   // COPIED cleared on a refcount-1 cluster
        ByteBuffer.wrap(img).putLong(3 * CS, 4L * CS);   // and on the L1 entry
        ArrayCheckFile f = new ArrayCheckFile(img);
        CheckResult r = check(f, 0);
        assertEquals(2, r.corruptions, log());
        assertTrue(log().contains("ERROR OFLAG_COPIED L2 cluster: l1_index=0 l1_entry=4000 refcount=1"), log());
        assertTrue(log().contains("ERROR OFLAG_COPIED data cluster: l2_entry=5000 refcount=1"), log());
        // like QEMU, -r leaks repairs COPIED too when the refcounts themselves were consistent
        ArrayCheckFile g = new ArrayCheckFile(f.data.clone());
        r = check(g, Qcow2Check.FIX_LEAKS);
        assertEquals(2, r.corruptionsFixed, log());
        assertEquals(0, check(g, 0).exitCode());
        r = check(f, Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS);
        assertEquals(2, r.corruptionsFixed);
        assertEquals(0, r.corruptions);
        assertEquals(4L * CS | QCOW_OFLAG_COPIED, ByteBuffer.wrap(f.data).getLong(3 * CS));
        assertEquals(5L * CS | QCOW_OFLAG_COPIED, ByteBuffer.wrap(f.data).getLong(4 * CS));
        assertEquals(0, check(f, 0).exitCode());
    }

    @Test
    void misalignedTablesAndDataAreReported() throws Exception {
        byte[] img = cleanImage();
        ByteBuffer.wrap(img).putLong(4 * CS + 8, 6L * CS + 512 | QCOW_OFLAG_COPIED);
        ArrayCheckFile f = new ArrayCheckFile(img);
        CheckResult r = check(f, 0);
        assertTrue(log().contains("ERROR offset=6200: Data cluster is not properly aligned; L2 entry corrupted."), log());
        assertTrue(r.corruptions >= 1);

        byte[] img2 = cleanImage();
        ByteBuffer.wrap(img2).putLong(3 * CS, 4L * CS + 512 | QCOW_OFLAG_COPIED);
        logBytes.reset();
        r = check(new ArrayCheckFile(img2), 0);
        assertTrue(log().contains("ERROR l2_offset=4200: Table is not cluster aligned; L1 entry corrupted"), log());
        assertEquals(2, r.exitCode());

        byte[] img3 = cleanImage();
        ByteBuffer.wrap(img3).putLong(CS, 2L * CS + 8);
        logBytes.reset();
        r = check(new ArrayCheckFile(img3), 0);
        assertTrue(log().contains("ERROR refcount table entry 0 has reserved bits set"), log());
        assertEquals(2, r.exitCode());
    }

    @Test
    void referencesPastTheEndOfTheFileAreCorruptions() throws Exception {
        byte[] img = cleanImage();
        ByteBuffer.wrap(img).putLong(4 * CS + 16, (1L << 40) | QCOW_OFLAG_COPIED); // data 1 TiB away
        ArrayCheckFile f = new ArrayCheckFile(img);
        CheckResult r = check(f, 0);
        assertTrue(log().contains("ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x10000000000 size 0x1000"), log());
        assertEquals(2, r.exitCode());
        assertEquals(7 * CS, f.data.length, "nothing grew");
    }

    @Test
    void reftablePointingIntoItselfIsRebuilt() throws Exception {
        byte[] img = cleanImage();
        ByteBuffer b = ByteBuffer.wrap(img);
        b.putLong(CS, (long) CS);    // reftable[0] -> the reftable itself
        ArrayCheckFile f = new ArrayCheckFile(img);
        CheckResult r = check(f, 0);
        assertTrue(log().contains("ERROR refcount block 0 refcount=2"), log());
        assertEquals(2, r.exitCode());
        r = check(f, Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS);
        assertTrue(log().contains("Rebuilding refcount structure"), log());
        CheckResult again = check(f, 0);
        assertEquals(0, again.exitCode(), log());
    }

    @Test
    void refblockOutsideTheImageAndHugeOffsetsAllocateNothing() throws Exception {
        byte[] img = cleanImage();
        ByteBuffer.wrap(img).putLong(CS + 8, 1L << 50);   // reftable[1] far past the end
        ArrayCheckFile f = new ArrayCheckFile(img);
        CheckResult r = check(f, 0);
        assertTrue(log().contains("ERROR refcount block 1 is outside image"), log());
        assertEquals(2, r.exitCode());
        r = check(f, Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS);
        assertEquals(0, check(f, 0).exitCode(), log());
        assertTrue(f.data.length < 16 * CS, "repair did not grow the file to the hostile offset");
    }

    @Test
    void hostileHeadersGiveOneLineErrors() throws Exception {
        byte[] img = cleanImage();
        ByteBuffer.wrap(img).putInt(36, 0x7fffffff);   // huge l1_size
        BlockException e = assertThrows(BlockException.class, () -> Qcow2Check.readHeader(new ArrayCheckFile(img)));
        assertFalse(e.getMessage().contains("\n"));
        assertTrue(e.getMessage().contains("L1"), e.getMessage());

        // a refcount table beyond the file reads as zeros: every cluster is an error, -r all rebuilds
        byte[] img2 = cleanImage();
        ByteBuffer.wrap(img2).putLong(48, 1L << 40);
        ArrayCheckFile f2 = new ArrayCheckFile(img2);
        CheckResult r = check(f2, 0);
        assertEquals(2, r.exitCode());
        assertTrue(log().contains("ERROR cluster 5 refcount=0 reference=1"), log());
        check(f2, Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS);
        assertEquals(0, check(f2, 0).exitCode(), log());
        assertTrue(f2.data.length < 16 * CS);
    }

    @Test
    void snapshotL1IsCountedAndSharedClustersNeedNoCopiedFlag() throws Exception {
        // a snapshot sharing the L2 table and data: refcounts 2, COPIED cleared in the active tables
        byte[] img = Arrays.copyOf(cleanImage(), 9 * CS);
        ByteBuffer b = ByteBuffer.wrap(img);
        b.putLong(7 * CS, 4L * CS);                       // snapshot L1 (cluster 7) -> same L2
        // snapshot table in cluster 8: one entry, id "1", name "s"
        b.putLong(8 * CS, 7L * CS).putInt(8 * CS + 8, 8).putShort(8 * CS + 12, (short) 1).putShort(8 * CS + 14, (short) 1);
        b.putInt(8 * CS + 36, 16);
        img[8 * CS + 40 + 16] = '1';
        img[8 * CS + 40 + 17] = 's';
        b.putInt(60, 1).putLong(64, 8L * CS);             // nb_snapshots, snapshots_offset
        b.putLong(3 * CS, 4L * CS);
        b.putLong(4 * CS, 5L * CS);
        b.putLong(4 * CS + 8, 6L * CS);
        for (int c : new int[] {4, 5, 6}) setRefcount(img, c, 2);
        setRefcount(img, 7, 1);
        setRefcount(img, 8, 1);
        ArrayCheckFile f = new ArrayCheckFile(img);
        CheckResult r = check(f, 0);
        assertEquals(0, r.exitCode(), log());
        setRefcount(f.data, 5, 1);
        logBytes.reset();
        r = check(f, 0);
        assertTrue(log().contains("ERROR cluster 5 refcount=1 reference=2"), log());
        assertEquals(2, r.exitCode());
    }

    @Test
    void repairDirtyRebuildsAndClearsTheDirtyBit() throws Exception {
        byte[] img = Arrays.copyOf(cleanImage(), 8 * CS);
        ByteBuffer b = ByteBuffer.wrap(img);
        b.putLong(4 * CS + 16, 7L * CS);            // lazy refcounts: written without a refcount
        b.putLong(OFF_INCOMPATIBLE_FEATURES, QCOW2_INCOMPAT_DIRTY);
        b.putLong(80, QCOW2_COMPAT_LAZY_REFCOUNTS);
        ArrayCheckFile f = new ArrayCheckFile(img);
        Qcow2Header h = Qcow2Check.readHeader(f);
        CheckResult r = Qcow2Check.check(f, h, Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS, log);
        assertEquals(0, r.corruptions, log());
        assertEquals(0, h.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY, "dirty bit cleared in memory");
        assertEquals(0, ByteBuffer.wrap(f.data).getLong(OFF_INCOMPATIBLE_FEATURES) & QCOW2_INCOMPAT_DIRTY, "and on disk");
        assertEquals(0, check(f, 0).exitCode(), log());
    }

    /** Builds a dirty lazy-refcount image (one data cluster without a refcount) with a bitmaps extension. */
    static byte[] dirtyImageWithBitmapsExtension(boolean autoclearBit) throws BlockException {
        byte[] img = Arrays.copyOf(cleanImage(), 8 * CS);
        Qcow2Header h = Qcow2Header.parse(Arrays.copyOf(img, CS));
        h.otherExtensions.add(new Qcow2Header.Extension(QCOW2_EXT_MAGIC_BITMAPS, new byte[24]));
        if (autoclearBit) h.autoclearFeatures |= QCOW2_AUTOCLEAR_BITMAPS;
        h.incompatibleFeatures |= QCOW2_INCOMPAT_DIRTY;
        h.compatibleFeatures |= QCOW2_COMPAT_LAZY_REFCOUNTS;
        byte[] hb = h.serialize();
        Arrays.fill(img, 0, CS, (byte) 0);
        System.arraycopy(hb, 0, img, 0, hb.length);
        ByteBuffer.wrap(img).putLong(4 * CS + 16, 7L * CS);
        return img;
    }

    @Test
    void repairRefusesImagesWithValidPersistentBitmaps() throws Exception {
        ArrayCheckFile f = new ArrayCheckFile(dirtyImageWithBitmapsExtension(true));
        byte[] before = f.data.clone();
        CheckResult r = check(f, Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS);
        assertEquals(1, r.checkErrors, log());
        assertTrue(log().contains("persistent bitmaps"), log());
        assertEquals(0, f.writes);
        assertArrayEquals(before, f.data);
        // stale bitmaps (autoclear bit clear): their clusters are leaks by the spec; repair proceeds
        logBytes.reset();
        f = new ArrayCheckFile(dirtyImageWithBitmapsExtension(false));
        Qcow2Header h = Qcow2Check.readHeader(f);
        r = Qcow2Check.check(f, h, Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS, log);
        assertEquals(0, r.checkErrors + r.corruptions, log());
        assertEquals(0, h.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY);
    }

    @Test
    void readOnlyFileRefusesRepair() throws Exception {
        ArrayCheckFile f = new ArrayCheckFile(cleanImage());
        f.writable = false;
        CheckResult r = check(f, Qcow2Check.FIX_LEAKS);
        assertEquals(1, r.exitCode());
        assertEquals(0, f.writes);
    }

    @Test
    void refcountCodecRoundTripsAllWidths() {
        for (int order = 0; order <= 6; order++) {
            byte[] blk = new byte[64];
            int n = 64 * 8 >> order;
            long max = order == 6 ? Long.MAX_VALUE : (1L << (1 << order)) - 1;
            for (int i = 0; i < n; i++) RefcountCodec.set(blk, order, i, (i * 7L) & max);
            for (int i = 0; i < n; i++) assertEquals((i * 7L) & max, RefcountCodec.get(blk, order, i), "order " + order + " index " + i);
        }
    }

    /**
     * Random damage to the metadata clusters (header fields, reftable, refblock, L1, L2): every
     * check and every repair ends with a result or a one-line BlockException, never a runtime
     * exception, a hang or a file grown to a hostile size; after -r all, a second -r all run
     * finds nothing left to fix when the first one succeeded.
     */
    @Test
    void randomMetadataDamageNeverCrashes() throws Exception {
        java.util.Random rnd = new java.util.Random(4242);
        for (int iter = 0; iter < 300; iter++) {
            byte[] img = Arrays.copyOf(cleanImage(), 8 * CS);
            int flips = 1 + rnd.nextInt(4);
            for (int k = 0; k < flips; k++) {
                int cluster = rnd.nextInt(5);
                int off = cluster == 0 ? 36 + rnd.nextInt(40) : cluster * CS + rnd.nextInt(cluster == 1 || cluster == 3 ? 64 : CS);
                img[off] ^= (byte) (1 << rnd.nextInt(8));
            }
            ArrayCheckFile f = new ArrayCheckFile(img);
            Qcow2Header h;
            try {
                h = Qcow2Check.readHeader(f);
            } catch (BlockException e) {
                assertFalse(e.getMessage().contains("\n"), e.getMessage());
                continue;
            }
            logBytes.reset();
            CheckResult r = Qcow2Check.check(f, h, 0, log);
            assertEquals(8 * CS, f.data.length, "check without -r wrote");
            CheckResult fixed = Qcow2Check.check(f, h, Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS, log);
            assertTrue(f.data.length <= 64 * CS, "repair grew the file to " + f.data.length + " after " + r);
            if (fixed.checkErrors == 0 && fixed.corruptions == 0) {
                CheckResult again = Qcow2Check.check(f, Qcow2Check.readHeader(f), 0, log);
                assertEquals(0, again.corruptions, "iteration " + iter + ": " + log());
            }
        }
    }
}
