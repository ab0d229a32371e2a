package io.vblk.virtio.blk;

import io.vblk.block.BlkDebugEvent;
import io.vblk.block.drivers.DebugDriver;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.testutil.Rig;
import org.junit.jupiter.api.Test;

import java.util.concurrent.TimeUnit;
import io.vblk.block.AioContext;

import static io.vblk.virtio.VirtioSpec.*;
import static io.vblk.virtio.testutil.Rig.waitFor;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link VirtioBlkConfig#irqCoalesceNs}: while a request is held at a blkdebug breakpoint, the
 * interrupt for a request that completed after it waits for the window, for the count, or for
 * the held request, and the used ring is written at once either way. The driver (the test) does
 * not reap between interrupts, so EVENT_IDX is not negotiated.
 */
class InterruptCoalescingTest {
    static final String NODE = "driver=debug,file.driver=memory,file.size=16M";
    /** Without EVENT_IDX every decision signals, whether or not the test has reaped (used_event). */
    static final long FEATURES = -1L & ~bit(F_EVENT_IDX);

    /** A write held at PWRITEV, then a read that completes while the write is in flight. */
    private static void writeHeldThenReads(Rig r, int reads) throws Exception {
        DebugDriver dbg = (DebugDriver) r.node.driver();
        dbg.breakAt(BlkDebugEvent.PWRITEV, "w");
        long buf = r.buffer(4096 * (1 + reads), 7);
        assertTrue(r.q.submit(VIRTIO_BLK_T_OUT, 0, buf, 4096, Layout.DIRECT) >= 0);
        r.q.forceKick();
        assertTrue(dbg.waitBreak("w", 10, TimeUnit.SECONDS), "the write reached the breakpoint");
        for (int i = 1; i <= reads; i++) {
            assertTrue(r.q.submit(VIRTIO_BLK_T_IN, 8L * i, buf + 4096L * i, 4096, Layout.DIRECT) >= 0);
        }
        r.q.forceKick();
        waitFor(r.q::usedIdx, reads, "the reads completed");
    }

    /** Releases the held write and waits for its completion and for the interrupt count to reach {@code irqs}. */
    private static void releaseWrite(Rig r, long usedIdx, long irqs) throws Exception {
        assertTrue(((DebugDriver) r.node.driver()).removeBreak("w"));
        waitFor(r.q::usedIdx, usedIdx, "the write completed");
        waitFor(r.q::interrupts, irqs, "the interrupt after the write");
    }

    private static void assertHeld(Rig r, String why) throws InterruptedException {
        Thread.sleep(100);
        assertEquals(0, r.q.interrupts(), why);
    }

    private static void assertWriteStillHeld(Rig r) {
        assertTrue(((DebugDriver) r.node.driver()).isSuspended("w"), "while the write is still held");
    }

    @Test
    void offByDefaultEveryBatchIsSignalled() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), FEATURES)) {
            writeHeldThenReads(r, 1);
            waitFor(r.q::interrupts, 1, "the read's interrupt while the write is held");
            releaseWrite(r, 2, 2);
        }
    }

    @Test
    void heldWhileAnotherRequestIsInFlightThenSentWithItsCompletion() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig().irqCoalesce(TimeUnit.MINUTES.toNanos(1), 32), FEATURES)) {
            writeHeldThenReads(r, 1);
            assertHeld(r, "the read's completion is in the used ring, its interrupt waits");
            releaseWrite(r, 2, 1);   // one interrupt for both, when nothing is left in flight
            Thread.sleep(50);
            assertEquals(1, r.q.interrupts());
        }
    }

    @Test
    void theWindowEndsTheWait() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig().irqCoalesce(TimeUnit.MILLISECONDS.toNanos(300), 32), FEATURES)) {
            writeHeldThenReads(r, 1);
            assertEquals(0, r.q.interrupts(), "held for 300 ms");
            waitFor(r.q::interrupts, 1, "the window ended");
            assertWriteStillHeld(r);
            releaseWrite(r, 2, 2);   // the write's own interrupt: nothing is left in flight
        }
    }

    @Test
    void theCountEndsTheWait() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig().irqCoalesce(TimeUnit.MINUTES.toNanos(1), 3), FEATURES)) {
            writeHeldThenReads(r, 2);
            assertHeld(r, "two completions wait for a third");
            long buf = r.buffer(4096, 1);
            assertTrue(r.q.submit(VIRTIO_BLK_T_IN, 64, buf, 4096, Layout.DIRECT) >= 0);
            r.q.forceKick();
            waitFor(r.q::interrupts, 1, "the third completion ends the wait");
            assertWriteStillHeld(r);
            releaseWrite(r, 4, 2);
        }
    }

    @Test
    void badSettingsAreRefused() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), FEATURES)) {
            AioContext[] ctx = {r.ctx};
            assertThrows(IllegalArgumentException.class, () -> new VirtioBlkDevice(r.node, new VirtioBlkConfig().irqCoalesce(-1, 32), ctx));
            assertThrows(IllegalArgumentException.class, () -> new VirtioBlkDevice(r.node, new VirtioBlkConfig().irqCoalesce(1000, 0), ctx));
        }
    }
}
