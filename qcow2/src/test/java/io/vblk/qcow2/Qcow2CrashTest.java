package io.vblk.qcow2;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.RequestFlags;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Scenario 7/12: the file sits behind a volatile write cache; at a random moment the "power fails"
 * and only a random subset of the unflushed file writes survives, in any order. Without lazy
 * refcounts the image must have no corruption (leaks are allowed); with lazy refcounts it may have
 * refcount errors but is dirty and is repaired by the next read/write open. Every byte written
 * before the last completed flush must read back.
 */
class Qcow2CrashTest {
    @ParameterizedTest
    @CsvSource({"512,off,1", "512,off,2", "4096,off,3", "65536,off,4", "4096,on,5", "512,on,6", "65536,off,7", "1024,off,8"})
    void powerLossKeepsFlushedDataAndLeavesLeaksAtWorst(int cs, String lazy, long seed) throws Exception {
        long fileSize = 32L << 20;
        int size = 6 << 20;
        for (int round = 0; round < 3; round++) {
            try (TestImage t = new TestImage(fileSize)) {
                t.create(new Qcow2Creator.Options().size(size).clusterSize(cs).lazyRefcounts(lazy.equals("on")));
                t.open("file.volatile-cache=on,l2-cache-size=" + (2 * cs) + ",discard=unmap");
                Random r = new Random(seed * 100 + round);
                byte[] shadow = new byte[size];
                byte[] flushed = new byte[size];
                boolean[] dirty = new boolean[size];     // touched since the last flush
                int ops = 50 + r.nextInt(200);
                for (int op = 0; op < ops; op++) {
                    long off = r.nextInt(size - 70000);
                    int len = 1 + r.nextInt(r.nextInt(4) == 0 ? 65536 : 4000);
                    int k = r.nextInt(12);
                    if (k < 9) {
                        byte[] d = Qcow2DriverTest.pattern(r, len);
                        assertEquals(0, t.run(() -> TestImage.write(t.q, off, d)));
                        System.arraycopy(d, 0, shadow, (int) off, len);
                        Arrays.fill(dirty, (int) off, (int) off + len, true);
                    } else if (k < 10) {
                        assertEquals(0, t.run(() -> t.q.pwriteZeroes(off, len, RequestFlags.MAY_UNMAP)));
                        Arrays.fill(shadow, (int) off, (int) off + len, (byte) 0);
                        Arrays.fill(dirty, (int) off, (int) off + len, true);
                    } else if (k < 11) {
                        long a = off / cs * cs;
                        long l = Math.min(size - a, (1 + r.nextInt(8)) * (long) cs);
                        assertEquals(0, t.run(() -> t.q.pdiscard(a, l)));
                        Arrays.fill(shadow, (int) a, (int) (a + l), (byte) 0);
                        Arrays.fill(dirty, (int) a, (int) (a + l), true);
                    } else {
                        assertEquals(0, t.run(() -> t.q.flush()));
                        System.arraycopy(shadow, 0, flushed, 0, size);
                        Arrays.fill(dirty, false);
                    }
                }
                NodeRefDriver nd = (NodeRefDriver) t.q.file().node().driver();
                t.run(() -> nd.crash(r));
                t.q.closeWithoutFlush();
                t.q = null;
                ImageChecker c = ImageChecker.check(t.rawAddress(), fileSize);
                boolean dirtyBit = (t.raw(72, 8)[7] & 1) != 0;
                if (lazy.equals("off")) {
                    assertTrue(c.corruptions.isEmpty(), "cs=" + cs + " round " + round + ": " + c);
                } else if (!c.corruptions.isEmpty()) {
                    assertTrue(dirtyBit, "refcount errors only on a dirty image: " + c);
                }
                t.open("");
                if (lazy.equals("on")) {
                    ImageChecker c2 = ImageChecker.check(t.rawAddress(), fileSize);
                    assertTrue(c2.clean(), "repaired: " + c2);
                }
                int[] rr = new int[1];
                byte[][] got = new byte[1][];
                t.run(() -> {
                    got[0] = TestImage.read(t.q, 0, size, rr);
                    return 0;
                });
                assertEquals(0, rr[0]);
                for (int i = 0; i < size; i++) {
                    if (!dirty[i] && got[0][i] != flushed[i]) fail("cs=" + cs + " round " + round + ": flushed byte lost at " + i);
                }
                t.closeImage();
            }
        }
    }
}
