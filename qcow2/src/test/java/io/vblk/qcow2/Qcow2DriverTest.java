package io.vblk.qcow2;

import static io.vblk.qcow2.Qcow2Constants.*;
import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.Errno;
import io.vblk.block.RequestFlags;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * The qcow2 driver on a memory file: random writes, zero writes and discards against a raw shadow
 * (reads, reopen, and a full refcount/COPIED consistency check with no leaks), concurrency,
 * backing files, lazy refcounts, overlap check, refcount table growth.
 */
class Qcow2DriverTest {

    static byte[] pattern(Random r, int len) {
        byte[] b = new byte[len];
        r.nextBytes(b);
        return b;
    }

    static void verifyAll(TestImage t, byte[] shadow) {
        int[] ret = new int[1];
        int chunk = 1 << 20;
        for (int off = 0; off < shadow.length; off += chunk) {
            int o = off;
            int len = Math.min(chunk, shadow.length - off);
            byte[][] got = new byte[1][];
            t.run(() -> {
                got[0] = TestImage.read(t.q, o, len, ret);
                return 0;
            });
            assertEquals(0, ret[0], "read at " + off);
            if (!Arrays.equals(Arrays.copyOfRange(shadow, off, off + len), got[0])) {
                for (int i = 0; i < len; i++) {
                    if (got[0][i] != shadow[off + i]) fail("mismatch at guest offset " + (off + i) + ": got " + got[0][i] + " want " + shadow[off + i]);
                }
            }
        }
    }

    static long imageEnd(TestImage t) {
        long[] v = new long[1];
        t.run(() -> {
            v[0] = t.drv().imageEndOffset();
            return 0;
        });
        return v[0];
    }

    static void assertClean(TestImage t, long fileSize) throws BlockException {
        ImageChecker c = ImageChecker.check(t.rawAddress(), fileSize);
        assertTrue(c.clean(), c.toString());
    }

    @ParameterizedTest
    @CsvSource({"512,16,3,4194304", "4096,16,3,16777216", "65536,16,3,33554432", "2097152,16,3,16777216",
            "4096,1,3,8388608", "4096,64,3,8388608", "65536,8,3,33554432", "65536,16,2,33554432", "1024,4,3,4194304"})
    void randomWorkloadMatchesShadow(int clusterSize, int refcountBits, int version, int size) throws Exception {
        long fileSize = 96L << 20;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(size).clusterSize(clusterSize).refcountBits(refcountBits).version(version));
            assertClean(t, fileSize);
            t.open("discard=unmap,l2-cache-size=" + (2 * clusterSize));
            byte[] shadow = new byte[size];
            Random r = new Random(clusterSize * 31L + refcountBits + version);
            for (int op = 0; op < 300; op++) {
                int kind = r.nextInt(10);
                long off = r.nextInt(size);
                int len = (int) Math.min(size - off, 1 + r.nextInt(r.nextBoolean() ? 3 * clusterSize : 4096));
                if (kind < 6) {
                    byte[] d = pattern(r, len);
                    int ret = t.run(() -> TestImage.write(t.q, off, d));
                    assertEquals(0, ret, "write " + off + "+" + len);
                    System.arraycopy(d, 0, shadow, (int) off, len);
                } else if (kind < 8) {
                    int flags = r.nextBoolean() ? RequestFlags.MAY_UNMAP : 0;
                    int ret = t.run(() -> t.q.pwriteZeroes(off, len, flags));
                    assertEquals(0, ret, "zero " + off + "+" + len);
                    Arrays.fill(shadow, (int) off, (int) (off + len), (byte) 0);
                } else {
                    long a = (off / clusterSize) * clusterSize;
                    long l = Math.min(size - a, ((long) (1 + r.nextInt(4))) * clusterSize);
                    int ret = t.run(() -> t.q.pdiscard(a, l));
                    assertEquals(0, ret, "discard");
                    Arrays.fill(shadow, (int) a, (int) (a + l), (byte) 0);
                }
                if (op % 50 == 49) verifyAll(t, shadow);
            }
            verifyAll(t, shadow);
            assertEquals(0, t.closeImage());
            assertClean(t, fileSize);
            t.open("");
            verifyAll(t, shadow);
            assertEquals(0, t.closeImage());
        }
    }

    @Test
    void concurrentWritesIntoSameClustersNeitherLoseDataNorDoubleAllocate() throws Exception {
        long fileSize = 64L << 20;
        int cs = 65536, size = 8 << 20;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(size).clusterSize(cs));
            // yield on every file request so the writers interleave like real asynchronous I/O
            BlockNode q = BlockNode.open(BlockOptions.parse("driver=qcow2,file.driver=noderef,file.yield=on,file.id=" + t.id));
            t.q = q;
            byte[] shadow = new byte[size];
            Random r = new Random(7);
            int crossing = 0;
            for (int round = 0; round < 6; round++) {
                int writers = 32;
                int[] results = new int[writers];
                java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(writers);
                // each writer gets 1 KiB in the middle of its own 2 KiB slot of one of a few shared
                // clusters; every third instead takes the gap across the end of its cluster (into the
                // next one) if no other writer has it. Ranges are disjoint: concurrent overlapping
                // writes have no defined order (neither here nor in QEMU), so a shadow could not know
                // which one wins. All writers are started on the context thread so each runs until
                // its first (yielding) file request.
                long[] offs = new long[writers];
                int[] lens = new int[writers];
                for (int w = 0; w < writers; w++) {
                    offs[w] = (long) r.nextInt(6) * cs + (round % 2 == 0 ? 0 : 3L * cs) + (long) w * 2048 + 512;
                    lens[w] = 1024;
                }
                for (int w = 0; w < writers; w += 3) {
                    long across = (offs[w] / cs + 1) * cs - 512;
                    if (!overlapsOthers(offs, lens, w, across, 1024)) offs[w] = across;
                }
                java.util.List<Runnable> bodies = new java.util.ArrayList<>();
                for (int w = 0; w < writers; w++) {
                    int wi = w;
                    long off = offs[w];
                    int len = lens[w];
                    if (off + len > size) {
                        done.countDown();
                        continue;
                    }
                    if (off / cs != (off + len - 1) / cs) crossing++;
                    byte[] d = pattern(r, len);
                    System.arraycopy(d, 0, shadow, (int) off, len);
                    bodies.add(() -> {
                        results[wi] = TestImage.write(q, off, d);
                        done.countDown();
                    });
                }
                t.ctx.runOnThread(() -> bodies.forEach(t.ctx::spawn));
                assertTrue(done.await(30, java.util.concurrent.TimeUnit.SECONDS), "writers finished");
                for (int w = 0; w < writers; w++) assertEquals(0, results[w]);
            }
            assertTrue(t.drv().clusters.dependencyWaits > 0, "writers really raced for the same clusters");
            assertTrue(crossing > 0, "some writers crossed into the next cluster");
            verifyAll(t, shadow);
            assertEquals(0, t.closeImage());
            assertClean(t, fileSize);
        }
    }

    /** True if [off, off+len) overlaps the range of any writer other than {@code self}. */
    private static boolean overlapsOthers(long[] offs, int[] lens, int self, long off, long len) {
        for (int v = 0; v < offs.length; v++) {
            if (v != self && offs[v] < off + len && off < offs[v] + lens[v]) return true;
        }
        return false;
    }

    @Test
    void concurrentWritesZeroWritesAndDiscardsKeepDataAndRefcounts() throws Exception {
        long fileSize = 64L << 20;
        int cs = 4096, size = 4 << 20;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(size).clusterSize(cs));
            BlockNode q = BlockNode.open(BlockOptions.parse("driver=qcow2,discard=unmap,file.driver=noderef,file.yield=on,file.id=" + t.id));
            t.q = q;
            byte[] shadow = new byte[size];
            Random r = new Random(21);
            for (int round = 0; round < 20; round++) {
                java.util.List<Runnable> bodies = new java.util.ArrayList<>();
                int n = 24;
                int[] res = new int[n];
                java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(n);
                for (int i = 0; i < n; i++) {
                    int wi = i;
                    // disjoint 16-cluster lanes per request; writes, zero writes and discards interleave
                    long lane = (long) (round % 2 * n + i) * 16 * cs % size;
                    int kind = r.nextInt(4);
                    if (kind < 2) {
                        long off = lane + r.nextInt(8 * cs);
                        int len = 1 + r.nextInt(8 * cs);
                        byte[] d = pattern(r, len);
                        System.arraycopy(d, 0, shadow, (int) off, len);
                        bodies.add(() -> { res[wi] = TestImage.write(q, off, d); done.countDown(); });
                    } else if (kind == 2) {
                        long off = lane + (long) r.nextInt(4) * cs;
                        int len = (1 + r.nextInt(8)) * cs;
                        Arrays.fill(shadow, (int) off, (int) off + len, (byte) 0);
                        bodies.add(() -> { res[wi] = q.pwriteZeroes(off, len, RequestFlags.MAY_UNMAP); done.countDown(); });
                    } else {
                        long off = lane + (long) r.nextInt(4) * cs;
                        int len = (1 + r.nextInt(8)) * cs;
                        Arrays.fill(shadow, (int) off, (int) off + len, (byte) 0);
                        bodies.add(() -> { res[wi] = q.pdiscard(off, len); done.countDown(); });
                    }
                }
                t.ctx.runOnThread(() -> bodies.forEach(t.ctx::spawn));
                assertTrue(done.await(30, java.util.concurrent.TimeUnit.SECONDS));
                for (int i = 0; i < n; i++) assertEquals(0, res[i]);
            }
            verifyAll(t, shadow);
            assertEquals(0, t.closeImage());
            assertClean(t, fileSize);
        }
    }

    @Test
    void unknownExtensionAndAutoclearBitsAreHandledOnOpen() throws Exception {
        long fileSize = 16L << 20;
        int cs = 65536;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(4 << 20).clusterSize(cs));
            Qcow2Header h = Qcow2Header.parse(t.raw(0, cs));
            h.otherExtensions.add(new Qcow2Header.Extension(0x7e57e57e, new byte[] {9, 9, 9}));
            h.headerLength = 128;
            h.tail = new byte[24];
            h.tail[20] = 0x42;
            h.autoclearFeatures = (1L << 5) | Qcow2Constants.QCOW2_AUTOCLEAR_BITMAPS;
            t.rawWrite(0, h.serialize());
            // read-only: nothing is written
            t.open("read-only=on");
            t.closeImage();
            assertEquals(h.autoclearFeatures, Qcow2Header.parse(t.raw(0, cs)).autoclearFeatures);
            // read-write: autoclear bits cleared before any write, unknown bytes kept
            t.open("");
            Qcow2Header after = Qcow2Header.parse(t.raw(0, cs));
            assertEquals(0, after.autoclearFeatures);
            assertEquals(1, after.otherExtensions.size());
            assertArrayEquals(new byte[] {9, 9, 9}, after.otherExtensions.get(0).data());
            assertEquals(128, after.headerLength);
            assertEquals(0x42, after.tail[20]);
            assertEquals(0, t.run(() -> TestImage.write(t.q, 0, new byte[100])));
            t.closeImage();
            assertClean(t, fileSize);
        }
    }

    @Test
    void backingFileCowAndV3DiscardHidesBacking() throws Exception {
        long fileSize = 32L << 20;
        int cs = 4096, size = 1 << 20;
        try (TestImage t = new TestImage(fileSize)) {
            BlockNode base = BlockNode.open(BlockOptions.parse("driver=memory,size=" + (size / 2)));
            byte[] baseData = pattern(new Random(3), size / 2);
            t.run(() -> TestImage.write(base, 0, baseData));
            t.create(new Qcow2Creator.Options().size(size).clusterSize(cs).backing("base.raw", "raw"));
            t.open("backing=null,discard=unmap");
            t.drv().attachBacking(base);
            byte[] shadow = new byte[size];
            System.arraycopy(baseData, 0, shadow, 0, baseData.length);
            verifyAll(t, shadow);
            // unaligned writes crossing clusters: head and tail must be copied from the backing file
            byte[] d = pattern(new Random(4), 3 * cs + 100);
            assertEquals(0, t.run(() -> TestImage.write(t.q, 1000, d)));
            System.arraycopy(d, 0, shadow, 1000, d.length);
            verifyAll(t, shadow);
            // v3 discard: reads zeros although the backing file has data
            assertEquals(0, t.run(() -> t.q.pdiscard(16 * cs, 4 * cs)));
            Arrays.fill(shadow, 16 * cs, 20 * cs, (byte) 0);
            // zero write over backing data
            assertEquals(0, t.run(() -> t.q.pwriteZeroes(32 * cs, 2 * cs, 0)));
            Arrays.fill(shadow, 32 * cs, 34 * cs, (byte) 0);
            verifyAll(t, shadow);
            assertEquals(0, t.closeImage());
            assertClean(t, fileSize);
        }
    }

    /**
     * One unmapping request frees data clusters in one L2 table, then allocates the next L2 table
     * (its L1 entry was empty, and a backing file means it must hold ZERO entries). The freed
     * clusters are the first free ones, so the new table lands on one of them: the deferred
     * discard of the freed range must not punch it, or the range reads the backing file again.
     */
    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void unmapThenL2AllocationInOneRequestKeepsTheNewTable(boolean zeroWrite) throws Exception {
        long fileSize = 8L << 20;
        int cs = 512, size = 1 << 20;
        int l2Span = cs / 8 * cs;                  // guest bytes one L2 table maps (32 KiB)
        try (TestImage t = new TestImage(fileSize)) {
            BlockNode base = BlockNode.open(BlockOptions.parse("driver=memory,size=" + size));
            byte[] baseData = pattern(new Random(5), size);
            t.run(() -> TestImage.write(base, 0, baseData));
            t.create(new Qcow2Creator.Options().size(size).clusterSize(cs));
            t.open("backing=null,discard=unmap,l2-cache-size=" + (2 * cs));
            t.drv().attachBacking(base);
            byte[] shadow = baseData.clone();
            byte[] d = pattern(new Random(6), l2Span);
            assertEquals(0, t.run(() -> TestImage.write(t.q, 0, d)));
            System.arraycopy(d, 0, shadow, 0, d.length);
            long l1Before = t.drv().clusters.l1[1];
            assertEquals(0, l1Before, "the second L2 table does not exist yet");
            long off = l2Span / 2, len = l2Span;    // second half of table 0, first half of table 1
            int r = zeroWrite ? t.run(() -> t.q.pwriteZeroes(off, len, RequestFlags.MAY_UNMAP)) : t.run(() -> t.q.pdiscard(off, len));
            assertEquals(0, r);
            Arrays.fill(shadow, (int) off, (int) (off + len), (byte) 0);
            long newL2 = Qcow2Layout.l1Offset(t.drv().clusters.l1[1]);
            assertTrue(newL2 != 0, "the request allocated the second L2 table");
            verifyAll(t, shadow);
            assertEquals(0, t.closeImage());
            assertClean(t, fileSize);
            t.open("backing=null");
            BlockNode base2 = BlockNode.open(BlockOptions.parse("driver=memory,size=" + size));
            t.run(() -> TestImage.write(base2, 0, baseData));
            t.drv().attachBacking(base2);
            verifyAll(t, shadow);
            assertEquals(0, t.closeImage());
        }
    }

    @Test
    void lazyRefcountsSetDirtyBeforeFirstLinkAndCleanCloseClearsIt() throws Exception {
        long fileSize = 16L << 20;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(4 << 20).clusterSize(65536).lazyRefcounts(true));
            t.open("");
            assertEquals(0, t.raw(72, 8)[7] & 1, "clean after open");
            assertEquals(0, t.run(() -> TestImage.write(t.q, 12345, new byte[777])));
            assertEquals(1, t.raw(72, 8)[7] & 1, "dirty after the first allocating write");
            assertEquals(0, t.closeImage());
            assertEquals(0, t.raw(72, 8)[7] & 1, "clean close clears the dirty bit");
            assertClean(t, fileSize);
        }
    }

    @Test
    void dirtyImageIsRepairedWhenOpenedReadWrite() throws Exception {
        long fileSize = 32L << 20;
        int cs = 4096;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(8 << 20).clusterSize(cs).lazyRefcounts(true));
            t.open("");
            byte[] shadow = new byte[8 << 20];
            Random r = new Random(12);
            for (int i = 0; i < 60; i++) {
                long off = r.nextInt(8 << 20 - 20000);
                byte[] d = pattern(r, 1 + r.nextInt(20000));
                assertEquals(0, t.run(() -> TestImage.write(t.q, off, d)));
                System.arraycopy(d, 0, shadow, (int) off, d.length);
            }
            // crash after the L2 tables reached the disk but before the refcount blocks did
            t.run(() -> {
                Qcow2Driver d = t.drv();
                d.lock.lock();
                try {
                    return d.l2Cache.write();
                } finally {
                    d.lock.unlock();
                }
            });
            t.q.closeWithoutFlush();
            t.q = null;
            assertEquals(1, t.raw(72, 8)[7] & 1, "dirty after the crash");
            assertFalse(ImageChecker.check(t.rawAddress(), fileSize).corruptions.isEmpty(), "refcounts are stale before the repair");
            // read-only opens work without repair
            t.open("read-only=on");
            verifyAll(t, shadow);
            t.closeImage();
            assertEquals(1, t.raw(72, 8)[7] & 1);
            // a read/write open rebuilds the refcounts (through the checker), which moves the
            // refcount table: the driver must use the new location from the header
            long tableBefore = java.nio.ByteBuffer.wrap(t.raw(48, 8)).getLong();
            t.open("");
            assertEquals(0, t.raw(72, 8)[7] & 1, "dirty bit cleared by the repair");
            long tableAfter = java.nio.ByteBuffer.wrap(t.raw(48, 8)).getLong();
            assertNotEquals(tableBefore, tableAfter, "the rebuild wrote a new refcount table");
            assertEquals(tableAfter, t.drv().refcount.tableOffset, "driver uses the new refcount table");
            assertEquals(tableAfter, t.drv().header.refcountTableOffset);
            assertEquals(java.nio.ByteBuffer.wrap(t.raw(56, 4)).getInt(), t.drv().refcount.tableClusters);
            assertEquals(0, t.drv().header.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY, "dirty bit cleared in memory");
            assertClean(t, fileSize);
            verifyAll(t, shadow);
            assertEquals(0, t.run(() -> TestImage.write(t.q, 5000, new byte[70000])));
            Arrays.fill(shadow, 5000, 75000, (byte) 0);
            verifyAll(t, shadow);
            assertEquals(0, t.closeImage());
            ImageChecker c = ImageChecker.check(t.rawAddress(), fileSize);
            assertTrue(c.corruptions.isEmpty(), c.toString());
        }
    }

    /**
     * A dirty image with valid persistent bitmaps is not repaired (the checker does not walk the
     * bitmap directory, so a repair would free the bitmaps' clusters): a read/write open fails
     * with ENOTSUP and writes nothing; a read-only open still works.
     */
    @Test
    void dirtyImageWithPersistentBitmapsIsRefusedUntouched() throws Exception {
        long fileSize = 16L << 20;
        int cs = 4096;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(4 << 20).clusterSize(cs).lazyRefcounts(true));
            t.open("");
            byte[] data = new byte[3 * cs];
            Arrays.fill(data, (byte) 0x5a);
            assertEquals(0, t.run(() -> TestImage.write(t.q, 0, data)));
            t.run(() -> {
                Qcow2Driver d = t.drv();
                d.lock.lock();
                try {
                    return d.l2Cache.write();
                } finally {
                    d.lock.unlock();
                }
            });
            t.q.closeWithoutFlush();
            t.q = null;
            Qcow2Header h = Qcow2Header.parse(t.raw(0, cs));
            assertEquals(QCOW2_INCOMPAT_DIRTY, h.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY);
            h.otherExtensions.add(new Qcow2Header.Extension(QCOW2_EXT_MAGIC_BITMAPS, new byte[24]));
            h.autoclearFeatures |= QCOW2_AUTOCLEAR_BITMAPS;
            t.rawWrite(0, h.serialize());
            byte[] before = t.raw(0, (int) fileSize);
            BlockException e = assertThrows(BlockException.class, () -> t.open(""));
            assertEquals(Errno.ENOTSUP, e.errno(), e.getMessage());
            assertTrue(e.getMessage().contains("persistent bitmaps"), e.getMessage());
            assertArrayEquals(before, t.raw(0, (int) fileSize), "nothing written");
            t.open("read-only=on");
            int[] ret = {0};
            byte[] got = readSync(t, 0, data.length, ret);
            assertEquals(0, ret[0]);
            assertArrayEquals(data, got);
        }
    }

    private static byte[] readSync(TestImage t, long off, int len, int[] ret) {
        byte[][] out = {null};
        t.run(() -> {
            out[0] = TestImage.read(t.q, off, len, ret);
            return 0;
        });
        return out[0];
    }

    @Test
    void overlapCheckRefusesWriteOnMetadataAndSetsCorruptBit() throws Exception {
        long fileSize = 16L << 20;
        int cs = 65536;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(4 << 20).clusterSize(cs));
            t.open("");
            assertEquals(0, t.run(() -> TestImage.write(t.q, 0, new byte[cs])));
            assertEquals(0, t.run(() -> t.q.flush()));
            assertEquals(0, t.closeImage());
            // point guest cluster 0 at the refcount block (cluster 2), keeping COPIED
            long l2 = Qcow2Layout.l1Offset(Qcow2Layout.getBE64(t.rawAddress() + 3L * cs));
            Qcow2Layout.putBE64(t.rawAddress() + l2, (2L * cs) | Qcow2Constants.QCOW_OFLAG_COPIED);
            t.open("");
            int ret = t.run(() -> TestImage.write(t.q, 0, new byte[512]));
            assertEquals(-Errno.EIO, ret);
            assertTrue(t.drv().isBroken());
            assertEquals(2, t.raw(72, 8)[7] & 2, "corrupt bit set on disk");
            t.q.closeWithoutFlush();
            t.q = null;
            BlockException e = assertThrows(BlockException.class, () -> t.open(""));
            assertTrue(e.getMessage().contains("corrupt"), e.getMessage());
            t.open("read-only=on");
            t.closeImage();
        }
    }

    @Test
    void refcountTableGrowsAndOldTableIsFreed() throws Exception {
        long fileSize = 48L << 20;
        int cs = 512, size = 24 << 20;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(size).clusterSize(cs));
            t.open("");
            long oldTable = t.drv().header.refcountTableOffset;
            byte[] shadow = new byte[size];
            Random r = new Random(5);
            for (long off = 0; off < size; off += 65536) {
                byte[] d = pattern(r, 65536);
                long o = off;
                assertEquals(0, t.run(() -> TestImage.write(t.q, o, d)));
                System.arraycopy(d, 0, shadow, (int) off, d.length);
            }
            assertNotEquals(oldTable, t.drv().header.refcountTableOffset, "refcount table moved");
            verifyAll(t, shadow);
            assertEquals(0, t.closeImage());
            assertClean(t, fileSize);
            // the header on disk points at the new table
            Qcow2Header h = Qcow2Header.parse(t.raw(0, cs));
            assertNotEquals(oldTable, h.refcountTableOffset);
            assertTrue(h.refcountTableClusters > 1);
            t.open("");
            verifyAll(t, shadow);
            t.closeImage();
        }
    }

    /** The highest non-zero refcount table entry (max_refcount_table_index), found by scanning. */
    private static int highestRefblockIndex(Qcow2Refcount rc) {
        int i = rc.table.length - 1;
        while (i >= 0 && rc.table[i] == 0) i--;
        return i;
    }

    @Test
    void overlapCheckScansRefcountBlocksUpToTheHighestUsedIndex() throws Exception {
        long fileSize = 48L << 20;
        int cs = 512, size = 24 << 20;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(size).clusterSize(cs));
            t.open("");
            Random r = new Random(9);
            for (long off = 0; off < size; off += 65536) {
                byte[] d = pattern(r, 65536);
                long o = off;
                assertEquals(0, t.run(() -> TestImage.write(t.q, o, d)));
            }
            for (int pass = 0; pass < 2; pass++) {
                Qcow2Refcount rc = t.drv().refcount;
                int top = highestRefblockIndex(rc);
                assertTrue(top > 0, "many refcount blocks");
                assertEquals(top, rc.maxTableIndex, pass == 0 ? "after hookups and table growth" : "after reopen");
                assertTrue(top < rc.table.length - 1, "the scan stops short of the table's end");
                // the newest refcount block is still protected, the first one too
                assertEquals("refcount block", t.drv().overlap.overlaps(Qcow2OverlapCheck.REFCOUNT_BLOCK, rc.table[top], cs));
                assertEquals("refcount block", t.drv().overlap.overlaps(Qcow2OverlapCheck.REFCOUNT_BLOCK, rc.table[0] + 100, 1));
                assertEquals(0, t.closeImage());
                t.open("");
            }
            t.closeImage();
        }
    }

    @Test
    void growingTheDiskGrowsL1ExactlyAndFreesTheOldTable() throws Exception {
        long fileSize = 32L << 20;
        int cs = 1024;
        try (TestImage t = new TestImage(fileSize)) {
            byte[] a = pattern(new Random(1), 5000);
            smallL1Image(t, 1000, a);
            long oldL1 = t.drv().header.l1TableOffset;
            assertEquals(0, t.run(() -> t.q.truncate(64L << 20, true, io.vblk.block.PreallocMode.OFF, 0)));
            assertEquals(512, t.drv().header.l1Size, "exact growth");
            assertNotEquals(oldL1, t.drv().header.l1TableOffset);
            assertEquals(64L << 20, t.q.getLength());
            byte[] b = pattern(new Random(2), 7000);
            long far = (60L << 20) + 333;
            assertEquals(0, t.run(() -> TestImage.write(t.q, far, b)));
            assertEquals(0, t.closeImage());
            assertClean(t, fileSize);
            Qcow2Header h = Qcow2Header.parse(t.raw(0, cs));
            assertEquals(64L << 20, h.size);
            assertEquals(512, h.l1Size);
            t.open("");
            assertArrayEquals(a, readAt(t, 1000, a.length));
            assertArrayEquals(b, readAt(t, far, b.length));
            assertEquals(-Errno.ENOTSUP, t.run(() -> t.q.truncate(1L << 20, true, io.vblk.block.PreallocMode.OFF, 0)), "no shrinking");
            t.closeImage();
        }
    }

    /** A 16 MiB image with 1 KiB clusters (l1_size 128), opened, with {@code data} written at {@code off}. */
    private static void smallL1Image(TestImage t, long off, byte[] data) throws Exception {
        t.create(new Qcow2Creator.Options().size(16 << 20).clusterSize(1024));
        t.open("");
        assertEquals(128, t.drv().header.l1Size);
        assertEquals(0, t.run(() -> TestImage.write(t.q, off, data)));
    }

    /** Reads {@code len} bytes at {@code off} through the driver and asserts success. */
    private static byte[] readAt(TestImage t, long off, int len) {
        int[] r = new int[1];
        byte[] got = readSync(t, off, len, r);
        assertEquals(0, r[0], "read at " + off);
        return got;
    }

    /**
     * The non-exact growth (QEMU grows this way for VM state past the disk's end, which vblk does
     * not write; nothing in vblk takes this path today, so it is driven directly): the size grows
     * by half until it covers the request, the new table is written elsewhere, the header switches,
     * the old table is freed, and the image checks clean with the data intact.
     */
    @Test
    void nonExactL1GrowthStepsByHalf() throws Exception {
        long fileSize = 32L << 20;
        int cs = 1024;
        try (TestImage t = new TestImage(fileSize)) {
            byte[] a = pattern(new Random(3), 9000);
            smallL1Image(t, 4000, a);
            long oldL1 = t.drv().header.l1TableOffset;
            int ret = t.run(() -> {
                t.drv().lock.lock();
                try {
                    return t.drv().clusters.growL1(200, false);
                } finally {
                    t.drv().lock.unlock();
                }
            });
            assertEquals(0, ret);
            assertEquals(288, t.drv().clusters.l1.length, "128 -> 192 -> 288: the first step by half that covers 200");
            assertEquals(0, t.closeImage());
            assertClean(t, fileSize);
            Qcow2Header h = Qcow2Header.parse(t.raw(0, cs));
            assertEquals(288, h.l1Size, "header switched to the new table");
            assertNotEquals(oldL1, h.l1TableOffset);
            t.open("");
            assertArrayEquals(a, readAt(t, 4000, a.length));
            t.closeImage();
        }
    }

    @Test
    void rewritingCopiedClustersAllocatesNothing() throws Exception {
        long fileSize = 16L << 20;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(8 << 20).clusterSize(65536));
            t.open("");
            assertEquals(0, t.run(() -> TestImage.write(t.q, 0, new byte[3 * 65536])));
            long end = imageEnd(t);
            assertEquals(0, t.run(() -> TestImage.write(t.q, 4096, pattern(new Random(1), 100000))));
            assertEquals(end, imageEnd(t));
            t.closeImage();
            assertClean(t, fileSize);
        }
    }

    @Test
    void metadataPreallocationMapsEveryCluster() throws Exception {
        long fileSize = 16L << 20;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(2 << 20).clusterSize(4096).preallocation(io.vblk.block.PreallocMode.METADATA));
            assertClean(t, fileSize);
            t.open("");
            long end = imageEnd(t);
            byte[] d = pattern(new Random(2), 5000);
            assertEquals(0, t.run(() -> TestImage.write(t.q, 777, d)));
            assertEquals(end, imageEnd(t), "preallocated clusters are written in place");
            byte[] shadow = new byte[2 << 20];
            System.arraycopy(d, 0, shadow, 777, d.length);
            verifyAll(t, shadow);
            t.closeImage();
            assertClean(t, fileSize);
        }
    }
}
