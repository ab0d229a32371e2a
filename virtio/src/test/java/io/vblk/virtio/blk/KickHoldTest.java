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

import static io.vblk.virtio.VirtioSpec.*;
import static io.vblk.virtio.testutil.Rig.waitFor;
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

    /**
     * {@link VirtioBlkConfig#kickHoldDepth} 2: with one write held the driver is still asked to
     * kick for the next request; with two held it is not, and the request it adds is popped at
     * the first write's completion. Once fewer than two are in flight, notifications are on again.
     */
    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void kicksAreHeldOnlyFromTheDepth(boolean eventIdx) throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig().kickHold(TimeUnit.MINUTES.toNanos(1), 2), features(eventIdx));
             var release = releasing(r); AutoCloseable release2 = () -> ((DebugDriver) r.node.driver()).removeBreak("w2")) {
            DebugDriver dbg = (DebugDriver) r.node.driver();
            long buf = writeHeld(r);
            dbg.breakAt(BlkDebugEvent.PWRITEV, "w2");
            assertTrue(r.q.submit(VIRTIO_BLK_T_OUT, 64, buf, 4096, Layout.DIRECT) >= 0);
            assertTrue(r.q.kick(), "one request in flight, below the depth: the device wants the kick");
            assertTrue(dbg.waitBreak("w2", 10, TimeUnit.SECONDS), "the second write reached its breakpoint");
            assertFalse(readBehind(r, buf), "two in flight: the device asked not to be kicked");
            Thread.sleep(100);
            assertEquals(0, r.q.usedIdx(), "nobody looked at the ring yet");
            assertTrue(dbg.removeBreak("w"));
            waitFor(r.q::usedIdx, 2, "the first write's completion made the device pop and serve the read");
            assertEquals(2, r.q.kicks(), "two kicks for three requests");
            assertTrue(dbg.isSuspended("w2"), "the second write is still in flight");

            // One in flight, below the depth: notifications are on again.
            Thread.sleep(50);
            assertTrue(r.q.submit(VIRTIO_BLK_T_IN, 16, buf + 4096, 4096, Layout.DIRECT) >= 0);
            assertTrue(r.q.kick(), "below the depth again: the device wants a kick");
            waitFor(r.q::usedIdx, 3, "the read completed while the second write is held");
            assertTrue(dbg.removeBreak("w2"));
            waitFor(r.q::usedIdx, 4, "the second write completed");
            assertEquals((1 + 2 + 2 + 2) / 4.0, r.dev.meanDepthAtPop(), 1e-9, "in flight at each pop: 1, 2, then 2 and 2 beside the second write");
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

    /**
     * A driver thread keeps up to 16 requests on a null node whose requests take 20 µs (timers),
     * adding one to four at a time and kicking only when the device asks (avail_event or
     * NO_NOTIFY, with the fence Linux's virtqueue_kick_prepare has), now and then letting the
     * queue run dry. With a one-minute bound the timer cannot rescue a lost wakeup: any request
     * left in the ring without a look stalls the loop, which fails after 5 s with both sides'
     * indices. With and without EVENT_IDX, with and without the I/O thread's busy-polling, holding
     * from one request in flight or from four.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"true,true,1", "true,false,1", "false,true,1", "false,false,1", "true,false,4", "false,true,4"})
    void noRequestIsLeftInTheRing(boolean eventIdx, boolean polling, int depth) throws Exception {
        String node = "driver=null,size=64M,latency-ns=20000";
        try (Rig r = new Rig(node, new VirtioBlkConfig().kickHold(TimeUnit.MINUTES.toNanos(1), depth), features(eventIdx))) {
            if (polling) r.ctx.runOnThread(() -> r.ctx.setPollParams(AioContext.IOTHREAD_POLL_MAX_NS, 0, 0));
            long buf = r.buffer(4096 * 16, 1);
            java.util.SplittableRandom rnd = new java.util.SplittableRandom(eventIdx ? 1 : 2);
            int inFlight = 0;
            long done = 0, want = 30_000, lastProgress = System.nanoTime();
            while (done < want) {
                if (inFlight < 16 && done + inFlight < want && rnd.nextInt(8) != 0) {
                    int n = (int) Math.min(Math.min(16 - inFlight, want - done - inFlight), 1 + rnd.nextInt(4));
                    for (int i = 0; i < n; i++) {
                        boolean write = rnd.nextBoolean();
                        assertTrue(r.q.submit(write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 8L * rnd.nextInt(16000),
                                buf + 4096L * rnd.nextInt(16), 4096, Layout.DIRECT) >= 0);
                        inFlight++;
                    }
                    r.q.kick();
                }
                boolean progress = false;
                while (r.q.pollUsed()) {
                    assertEquals(VIRTIO_BLK_S_OK, r.q.status(r.q.lastHead()));
                    inFlight--;
                    done++;
                    progress = true;
                }
                if (progress) {
                    lastProgress = System.nanoTime();
                } else if (inFlight > 0) {
                    r.q.awaitInterrupt(1);
                    assertTrue(System.nanoTime() - lastProgress < 5_000_000_000L,
                            "stalled with " + inFlight + " requests out: " + r.dev.describeQueue(0));
                }
            }
            assertEquals(0, inFlight);
            assertTrue(r.dev.heldPasses() > 0, "completions found requests the driver did not kick for");
        }
    }

    @Test
    void aNegativeBoundIsRefused() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), features(true))) {
            AioContext[] ctx = {r.ctx};
            assertThrows(IllegalArgumentException.class, () -> new VirtioBlkDevice(r.node, new VirtioBlkConfig().kickHold(-1), ctx));
            assertThrows(IllegalArgumentException.class, () -> new VirtioBlkDevice(r.node, new VirtioBlkConfig().kickHold(1000, 0), ctx));
        }
    }
}
