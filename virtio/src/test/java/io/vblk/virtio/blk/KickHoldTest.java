package io.vblk.virtio.blk;

import io.vblk.block.AioContext;
import io.vblk.block.BlkDebugEvent;
import io.vblk.block.drivers.DebugDriver;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.testutil.Rig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link VirtioBlkConfig#kickHoldNs}: while a write is held in flight at a blkdebug breakpoint,
 * the driver (the test, which kicks only when the device's suppression fields ask for it, as
 * Linux's virtqueue_kick_prepare does) is told not to kick for a read it adds; the read is popped
 * when the write completes, or when the hold's time bound ends, and notifications are on again
 * once nothing is in flight. Run with and without EVENT_IDX: avail_event and NO_NOTIFY.
 */
class KickHoldTest {
    static final String NODE = "driver=debug,file.driver=memory,file.size=16M";

    /** Closed before the rig: releases the held write, so a failed assertion cannot hang the rig's drain. */
    private static AutoCloseable releasing(Rig r) {
        return () -> ((DebugDriver) r.node.driver()).removeBreak("w");
    }

    private static long features(boolean eventIdx) {
        return eventIdx ? -1L : -1L & ~bit(F_EVENT_IDX);
    }

    /** Submits a write that stops at PWRITEV, and waits until it is there. */
    private static long writeHeld(Rig r) throws Exception {
        DebugDriver dbg = (DebugDriver) r.node.driver();
        dbg.breakAt(BlkDebugEvent.PWRITEV, "w");
        long buf = r.buffer(8192, 7);
        assertTrue(r.q.submit(VIRTIO_BLK_T_OUT, 0, buf, 4096, Layout.DIRECT) >= 0);
        assertTrue(r.q.kick(), "nothing in flight yet: the device wants the first kick");
        assertTrue(dbg.waitBreak("w", 10, TimeUnit.SECONDS), "the write reached the breakpoint");
        return buf;
    }

    /** Adds a read behind the held write and returns whether the device asked for a kick. */
    private static boolean readBehind(Rig r, long buf) {
        assertTrue(r.q.submit(VIRTIO_BLK_T_IN, 8, buf + 4096, 4096, Layout.DIRECT) >= 0);
        return r.q.kick();
    }

    private static void waitFor(LongSupplier value, long want, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (value.getAsLong() < want) {
            assertTrue(System.nanoTime() < deadline, what);
            Thread.sleep(1);
        }
        assertEquals(want, value.getAsLong(), what);
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void offByDefaultTheDriverKicksForEveryRequest(boolean eventIdx) throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), features(eventIdx)); var release = releasing(r)) {
            long buf = writeHeld(r);
            assertTrue(readBehind(r, buf), "notifications are on after the pass");
            waitFor(r.q::usedIdx, 1, "the read completed while the write is held");
            assertTrue(((DebugDriver) r.node.driver()).removeBreak("w"));
            waitFor(r.q::usedIdx, 2, "the write completed");
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void aRequestAddedWhileHeldIsPoppedAtTheNextCompletion(boolean eventIdx) throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig().kickHold(TimeUnit.MINUTES.toNanos(1)), features(eventIdx)); var release = releasing(r)) {
            long buf = writeHeld(r);
            assertFalse(readBehind(r, buf), "a request is in flight: the device asked not to be kicked");
            Thread.sleep(100);
            assertEquals(0, r.q.usedIdx(), "nobody looked at the ring: no kick, no completion yet");
            assertTrue(((DebugDriver) r.node.driver()).removeBreak("w"));
            waitFor(r.q::usedIdx, 2, "the write's completion made the device pop and serve the read");
            assertEquals(1, r.q.kicks(), "one kick for both requests");

            // Nothing in flight: notifications are on again, the next request is kicked.
            Thread.sleep(50);
            assertTrue(r.q.submit(VIRTIO_BLK_T_IN, 16, buf, 4096, Layout.DIRECT) >= 0);
            assertTrue(r.q.kick(), "idle again: the device wants a kick");
            waitFor(r.q::usedIdx, 3, "the third request completed");
        }
    }

    @Test
    void theTimeBoundEndsTheHold() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig().kickHold(TimeUnit.MILLISECONDS.toNanos(300)), features(true)); var release = releasing(r)) {
            long buf = writeHeld(r);
            assertFalse(readBehind(r, buf), "held");
            waitFor(r.q::usedIdx, 1, "the hold ended after its bound and the device found the read");
            DebugDriver dbg = (DebugDriver) r.node.driver();
            assertTrue(dbg.isSuspended("w"), "the write is still in flight");
            assertTrue(r.q.pollUsed());
            assertEquals(VIRTIO_BLK_S_OK, r.q.status(r.q.lastHead()), "the read, served while the write is held");
            assertTrue(dbg.removeBreak("w"));
            waitFor(r.q::usedIdx, 2, "the write completed");
            assertEquals(1, r.q.kicks());
        }
    }

    @Test
    void aNegativeBoundIsRefused() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), features(true))) {
            AioContext[] ctx = {r.ctx};
            assertThrows(IllegalArgumentException.class, () -> new VirtioBlkDevice(r.node, new VirtioBlkConfig().kickHold(-1), ctx));
        }
    }
}
