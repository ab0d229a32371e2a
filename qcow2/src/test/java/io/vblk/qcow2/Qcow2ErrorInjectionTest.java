package io.vblk.qcow2;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.BlkDebugEvent;
import io.vblk.block.BlockNode;
import io.vblk.block.Errno;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import java.util.stream.Stream;
import org.junit.jupiter.params.provider.Arguments;

/**
 * iotest 026 in miniature: the first file request after each metadata event fails once with EIO or
 * ENOSPC. The failing guest request may fail, later ones must work, and the image must end with
 * no corruption (leaks allowed) and every successfully written byte intact after reopen.
 */
class Qcow2ErrorInjectionTest {
    static Stream<Arguments> cases() {
        BlkDebugEvent[] evs = {BlkDebugEvent.L2_LOAD, BlkDebugEvent.L2_UPDATE, BlkDebugEvent.L2_ALLOC_WRITE, BlkDebugEvent.L2_ALLOC_COW_READ,
            BlkDebugEvent.L1_UPDATE, BlkDebugEvent.CLUSTER_ALLOC, BlkDebugEvent.REFBLOCK_LOAD, BlkDebugEvent.REFBLOCK_UPDATE_PART,
            BlkDebugEvent.REFBLOCK_ALLOC, BlkDebugEvent.REFBLOCK_ALLOC_WRITE, BlkDebugEvent.REFBLOCK_ALLOC_HOOKUP,
            BlkDebugEvent.REFBLOCK_ALLOC_WRITE_BLOCKS, BlkDebugEvent.REFBLOCK_ALLOC_WRITE_TABLE, BlkDebugEvent.REFBLOCK_ALLOC_SWITCH_TABLE,
            BlkDebugEvent.REFTABLE_GROW, BlkDebugEvent.COW_READ, BlkDebugEvent.COW_WRITE, BlkDebugEvent.WRITE_AIO, BlkDebugEvent.FLUSH_TO_OS,
            BlkDebugEvent.CLUSTER_FREE, BlkDebugEvent.READ_AIO};
        return Arrays.stream(evs).flatMap(e -> Stream.of(Arguments.of(e, Errno.EIO), Arguments.of(e, Errno.ENOSPC)));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void failEachMetadataEventOnce(BlkDebugEvent ev, int errno) throws Exception {
        long fileSize = 48L << 20;
        int cs = 512, size = 12 << 20;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(size).clusterSize(cs));
            t.open("backing=null,discard=unmap,file.inject-event=" + ev.optionName() + ",file.inject-errno=" + errno + ",l2-cache-size=1024");
            BlockNode base = BlockNode.open(io.vblk.block.BlockOptions.parse("driver=memory,size=" + (size / 2)));
            byte[] baseData = Qcow2DriverTest.pattern(new Random(99), size / 2);
            t.run(() -> TestImage.write(base, 0, baseData));
            t.drv().attachBacking(base);
            byte[] shadow = new byte[size];
            System.arraycopy(baseData, 0, shadow, 0, baseData.length);
            boolean[] unknown = new boolean[size];
            Random r = new Random(ev.ordinal() * 7L + errno);
            int failures = 0;
            for (int op = 0; op < 436; op++) {
                // phase 1: 9 MiB of sequential writes makes the refcount table grow; phase 2: random mix
                long off = op < 36 ? (long) op * 262144 : r.nextInt(size - 70000);
                int len = op < 36 ? 262144 : 1 + r.nextInt(op % 10 == 0 ? 65536 : 3000);
                int kind = op < 36 ? 0 : r.nextInt(10);
                int ret;
                byte[] d = null;
                if (kind < 8) {
                    byte[] dd = Qcow2DriverTest.pattern(r, len);
                    d = dd;
                    ret = t.run(() -> TestImage.write(t.q, off, dd));
                } else {
                    long a = off / cs * cs;
                    int l = (1 + r.nextInt(64)) * cs;
                    ret = kind == 8 ? t.run(() -> t.q.pdiscard(a, l)) : t.run(() -> t.q.pwriteZeroes(a, l, io.vblk.block.RequestFlags.MAY_UNMAP));
                    d = new byte[l];
                    final long fa = a;
                    if (ret >= 0) {
                        System.arraycopy(d, 0, shadow, (int) fa, l);
                        Arrays.fill(unknown, (int) fa, (int) fa + l, false);
                    } else {
                        Arrays.fill(unknown, (int) fa, (int) fa + l, true);
                    }
                }
                if (ret < 0) {
                    assertTrue(ret == -errno || ret == -Errno.EIO, "errno " + ret);
                    failures++;
                    if (kind < 8) Arrays.fill(unknown, (int) off, (int) off + len, true);
                } else if (kind < 8) {
                    System.arraycopy(d, 0, shadow, (int) off, len);
                    Arrays.fill(unknown, (int) off, (int) off + len, false);
                }
                if (op % 40 == 39) {
                    int fr = t.run(() -> t.q.flush());
                    if (fr < 0) failures++;
                }
                if (op % 97 == 0) {
                    int[] rr = new int[1];
                    t.run(() -> {
                        TestImage.read(t.q, off, len, rr);
                        return 0;
                    });
                    if (rr[0] < 0) failures++;
                }
            }
            assertFalse(t.drv().isBroken(), "an I/O error is not a corruption");
            NodeRefDriver nd = (NodeRefDriver) t.q.file().node().driver();
            System.out.println("INJECT " + ev + " errno " + errno + " injected=" + nd.injected + " failures=" + failures);
            if (ev != BlkDebugEvent.L2_ALLOC_COW_READ) assertEquals(1, nd.injected, ev + " fired and its error was injected");
            assertTrue(failures <= 2, "the error is injected once: " + failures);
            assertEquals(0, t.closeImage());
            ImageChecker c = ImageChecker.check(t.rawAddress(), fileSize);
            assertTrue(c.corruptions.isEmpty(), ev + ": " + c);
            t.open("backing=null");
            // closing the first qcow2 node closed its backing child: attach a new one with the same data
            BlockNode base2 = BlockNode.open(io.vblk.block.BlockOptions.parse("driver=memory,size=" + (size / 2)));
            t.run(() -> TestImage.write(base2, 0, baseData));
            t.drv().attachBacking(base2);
            int[] rr = new int[1];
            byte[][] got = new byte[1][];
            t.run(() -> {
                got[0] = TestImage.read(t.q, 0, size, rr);
                return 0;
            });
            assertEquals(0, rr[0]);
            for (int i = 0; i < size; i++) {
                if (!unknown[i] && got[0][i] != shadow[i]) fail(ev + ": data lost at " + i);
            }
            t.closeImage();
        }
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"l1_grow_alloc_table,5", "l1_grow_write_table,5", "l1_grow_activate_table,5",
            "l1_grow_alloc_table,28", "l1_grow_write_table,28", "l1_grow_activate_table,28"})
    void failL1GrowthOnce(String ev, int errno) throws Exception {
        long fileSize = 32L << 20;
        int cs = 1024;
        try (TestImage t = new TestImage(fileSize)) {
            t.create(new Qcow2Creator.Options().size(16 << 20).clusterSize(cs));
            t.open("file.inject-event=" + ev + ",file.inject-errno=" + errno);
            byte[] a = Qcow2DriverTest.pattern(new Random(1), 50000);
            assertEquals(0, t.run(() -> TestImage.write(t.q, 12345, a)));
            int r1 = t.run(() -> t.q.truncate(64L << 20, true, io.vblk.block.PreallocMode.OFF, 0));
            assertEquals(-errno, r1, "the injected error is reported");
            assertEquals(16L << 20, t.q.getLength(), "size unchanged after the failure");
            assertEquals(0, t.run(() -> t.q.truncate(64L << 20, true, io.vblk.block.PreallocMode.OFF, 0)));
            byte[] b = Qcow2DriverTest.pattern(new Random(2), 9000);
            assertEquals(0, t.run(() -> TestImage.write(t.q, 50L << 20, b)));
            assertEquals(0, t.closeImage());
            ImageChecker c = ImageChecker.check(t.rawAddress(), fileSize);
            assertTrue(c.corruptions.isEmpty(), c.toString());
            t.open("");
            int[] rr = new int[1];
            byte[][] got = new byte[2][];
            t.run(() -> {
                got[0] = TestImage.read(t.q, 12345, a.length, rr);
                got[1] = TestImage.read(t.q, 50L << 20, b.length, rr);
                return 0;
            });
            assertArrayEquals(a, got[0]);
            assertArrayEquals(b, got[1]);
            t.closeImage();
        }
    }
}
