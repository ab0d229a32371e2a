package io.vblk.virtio.blk;

import io.vblk.block.NativeMemory;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.testutil.Rig;
import org.junit.jupiter.api.Test;

import java.util.concurrent.TimeUnit;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A started queue is a poll source of its I/O thread (QEMU's virtqueue aio_poll handlers): while the
 * thread busy-polls, requests the driver makes available are served without a kick, and the device
 * does not ask for kicks. With poll-max-ns=0 nothing happens until the kick.
 */
class QueuePollingTest {

    /** Lets the context's adaptive window grow to its maximum (a huge grow factor: two quick events). */
    private static void growWindow(Rig r) throws InterruptedException {
        for (int i = 0; i < 3; i++) {
            r.ctx.execute(() -> {});
            Thread.sleep(2);
        }
        assertTrue(r.ctx.pollNs() > 0, "window " + r.ctx.pollNs());
    }

    @Test
    void requestsWithoutKickAreServedWhilePolling() throws Exception {
        try (Rig r = new Rig()) {
            r.ctx.setPollParams(TimeUnit.SECONDS.toNanos(2), 1_000_000, 0);
            long buf = r.buffer(4096, 0x6b);
            long before = r.dev.polledPasses();
            for (int i = 0; i < 8; i++) {
                growWindow(r);
                int head = r.q.submit(VIRTIO_BLK_T_OUT, 8L * i, buf, 4096, Layout.DIRECT);
                assertTrue(head >= 0);
                // no kick: only the polling I/O thread can see the request
                assertTrue(r.q.waitUsed(5_000), "request " + i + " served without a kick");
                assertEquals(VIRTIO_BLK_S_OK, r.q.status(head));
            }
            assertTrue(r.dev.polledPasses() - before >= 8, "passes started by polling: " + (r.dev.polledPasses() - before));
            // the data reached the node
            long rb = r.buffer(4096, 0);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, 8L * 7, rb, 4096, Layout.DIRECT));
            assertEquals((byte) 0x6b, NativeMemory.getByte(r.host(rb, 4096) + 4095));
        }
    }

    @Test
    void whilePollingTheDeviceAsksForNoKicks() throws Exception {
        try (Rig r = new Rig()) {
            r.ctx.setPollParams(TimeUnit.SECONDS.toNanos(2), 1_000_000, 0);
            growWindow(r);
            // the I/O thread now spins for up to 2 s with notifications off
            boolean[] enabled = new boolean[1];
            Thread.sleep(20);
            enabled[0] = r.dev.queue(0).notificationEnabled();
            assertFalse(enabled[0], "notifications are off while the thread busy-polls");
            // once it stops polling (window over, no work), they are back on
            r.ctx.setPollParams(0, 0, 0);
            r.ctx.runOnThread(() -> enabled[0] = r.dev.queue(0).notificationEnabled());
            assertTrue(enabled[0]);
        }
    }

    @Test
    void withoutPollingOnlyTheKickStartsWork() throws Exception {
        try (Rig r = new Rig()) {
            r.ctx.setPollParams(0, 0, 0);
            long buf = r.buffer(4096, 0x11);
            int head = r.q.submit(VIRTIO_BLK_T_OUT, 0, buf, 4096, Layout.DIRECT);
            assertFalse(r.q.waitUsed(300), "no kick, no polling: the request waits");
            r.q.forceKick();
            assertTrue(r.q.waitUsed(5_000));
            assertEquals(head, r.q.lastHead());
            assertEquals(0, r.dev.polledPasses());
        }
    }
}
