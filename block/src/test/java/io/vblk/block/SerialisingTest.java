package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.drivers.DebugDriver;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;
import org.junit.jupiter.api.Test;

/**
 * Tracked and serialising requests (mark_request_serialising, wait_serialising_requests): debug
 * breakpoints stage the interleavings that would lose data if RMW were not serialising.
 */
class SerialisingTest extends BlockTestSupport {
    private static final String GRAPH = "driver=debug,file.driver=memory,file.size=1M,file.align=4096";

    @Test
    void concurrentSubSectorWritesIntoOneBlockAllSurvive() throws Exception {
        BlockNode n = open(GRAPH);
        DebugDriver dbg = debug(n);
        int k = 8;
        NativeBuffer[] bufs = new NativeBuffer[k];
        IntSupplier[] bodies = new IntSupplier[k];
        for (int i = 0; i < k; i++) {
            bufs[i] = pattern(512, 10 + i);
            long off = 4096 + i * 512L;
            NativeBuffer b = bufs[i];
            bodies[i] = () -> n.pwritev(off, 512, IoVector.of(b.address(), 512), 0);
        }
        // A (sector 0: tail RMW only) has read the old block and stops just before writing it back
        dbg.breakAt(BlkDebugEvent.PWRITEV, "a");
        Running a = spawn(bodies[0]);
        assertTrue(dbg.waitBreak("a", 10, TimeUnit.SECONDS));
        IntSupplier[] rest = new IntSupplier[k - 1];
        System.arraycopy(bodies, 1, rest, 0, k - 1);
        Running others = spawn(rest);
        Thread.sleep(100);
        // without serialising they would have read the old block, written it, and A would now clobber them
        assertEquals(0, others.finished(), "overlapping RMW writes must wait for the suspended one");
        assertEquals(k, n.trackedRequestCount());
        assertTrue(dbg.resume("a"));
        a.await();
        others.await();
        assertEquals(0, a.result(0));
        for (int i = 0; i < k - 1; i++) {
            assertEquals(0, others.result(i));
        }
        byte[] got = read(n, 4096, 4096);
        for (int i = 0; i < k; i++) {
            byte[] want = patternBytes(512, 10 + i);
            byte[] part = new byte[512];
            System.arraycopy(got, i * 512, part, 0, 512);
            assertArrayEquals(want, part, "sector " + i + " lost");
        }
        assertEquals(0, n.trackedRequestCount());
    }

    @Test
    void tailRmwPausedLetsOtherBlocksThrough() throws Exception {
        BlockNode n = open(GRAPH);
        DebugDriver dbg = debug(n);
        NativeBuffer a = pattern(1000, 1);
        NativeBuffer b = pattern(512, 2);
        NativeBuffer c = pattern(512, 3);
        dbg.breakAt(BlkDebugEvent.PWRITEV_RMW_AFTER_TAIL, "t");
        // A: 0..1000 (tail RMW in block 0); B: same block, sector 2; C: another block entirely
        Running ra = spawn(() -> n.pwritev(0, 1000, IoVector.of(a.address(), 1000), 0));
        assertTrue(dbg.waitBreak("t", 10, TimeUnit.SECONDS));
        Running rb = spawn(() -> n.pwritev(1024, 512, IoVector.of(b.address(), 512), 0));
        Running rc = spawn(() -> n.pwritev(65536 + 512, 512, IoVector.of(c.address(), 512), 0));
        rc.await();
        assertEquals(0, rc.result(0));
        Thread.sleep(50);
        assertFalse(rb.isDone(0), "B overlaps the serialising A and must wait");
        dbg.resume("t");
        ra.await();
        rb.await();
        byte[] got = read(n, 0, 1536);
        byte[] want = new byte[1536];
        System.arraycopy(patternBytes(1000, 1), 0, want, 0, 1000);
        System.arraycopy(patternBytes(512, 2), 0, want, 1024, 512);
        assertArrayEquals(want, got);
    }

    @Test
    void alignedReadWaitsForAnOverlappingSerialisingWrite() throws Exception {
        BlockNode n = open(GRAPH);
        DebugDriver dbg = debug(n);
        NativeBuffer a = pattern(100, 7);
        NativeBuffer rbuf = buffer(4096);
        dbg.breakAt(BlkDebugEvent.PWRITEV_RMW_AFTER_HEAD, "h");
        Running ra = spawn(() -> n.pwritev(8192 + 100, 100, IoVector.of(a.address(), 100), 0));
        assertTrue(dbg.waitBreak("h", 10, TimeUnit.SECONDS));
        // the read is not serialising itself, but the write is: it waits, then sees the new data
        Running rr = spawn(() -> n.preadv(8192, 4096, IoVector.of(rbuf.address(), 4096), 0));
        Thread.sleep(50);
        assertFalse(rr.isDone(0));
        dbg.resume("h");
        ra.await();
        rr.await();
        byte[] got = new byte[100];
        rbuf.copyTo(100, got, 0, 100);
        assertArrayEquals(patternBytes(100, 7), got);
    }

    @Test
    void noSerialisingReadDoesNotWait() throws Exception {
        BlockNode n = open(GRAPH);
        DebugDriver dbg = debug(n);
        NativeBuffer a = pattern(100, 7);
        NativeBuffer rbuf = buffer(4096);
        dbg.breakAt(BlkDebugEvent.PWRITEV_RMW_AFTER_HEAD, "h");
        Running ra = spawn(() -> n.pwritev(100, 100, IoVector.of(a.address(), 100), 0));
        assertTrue(dbg.waitBreak("h", 10, TimeUnit.SECONDS));
        Running rr = spawn(() -> n.preadv(0, 4096, IoVector.of(rbuf.address(), 4096), RequestFlags.NO_SERIALISING));
        rr.await();
        assertEquals(0, rr.result(0));
        dbg.resume("h");
        ra.await();
    }
}
