package io.vblk.virtio.blk;

import io.vblk.aio.Native;
import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import io.vblk.virtio.driver.GuestDriver;
import io.vblk.virtio.driver.GuestQueue;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.testutil.StallDriver;
import io.vblk.virtio.vhost.InflightRegion;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A device that dies with requests in flight, and a new device over the same guest memory and
 * the same inflight region (vhost-user INFLIGHT_SHMFD, as after a backend crash and QEMU
 * reconnect): the new device resubmits exactly the unanswered requests, in the order they were
 * popped, before anything new, and the used ring ends consistent. No QEMU involved.
 */
class InflightResubmitTest {
    static final int QSIZE = 16;
    static final long F_DUP_CLOEXEC = 1030;

    @Test
    void requestsLeftInFlightByADeadDeviceAreResubmittedInPopOrder() throws Exception {
        StallDriver.register();
        VirtioBlkConfig cfg = new VirtioBlkConfig().queueSize(QSIZE);
        try (GuestMemory mem = GuestMemory.anonymous(32L << 20);
             InflightRegion region = InflightRegion.create(1, QSIZE)) {
            // ---- device A: its node never completes a read or write
            AioContext ctxA = AioContext.start("dying");
            BlockNode nodeA = BlockNode.open(BlockOptions.parse("driver=" + StallDriver.NAME + ",size=16M"));
            VirtioBlkDevice devA = new VirtioBlkDevice(nodeA, cfg, new AioContext[] {ctxA});
            devA.queue(0).setInflightTracker(region.queue(0, QSIZE));
            GuestDriver drv = new GuestDriver(devA, mem, 0, 16L << 20);
            drv.initialize(-1L, QSIZE);
            GuestQueue q = drv.queue(0);
            long id = drv.alloc(20, 8);
            // two GET_IDs complete, so the free list hands out heads out of order afterwards
            int a = q.submit(VIRTIO_BLK_T_GET_ID, 0, id, 20, Layout.INDIRECT);
            int b = q.submit(VIRTIO_BLK_T_GET_ID, 0, id, 20, Layout.INDIRECT);
            q.forceKick();
            assertTrue(q.waitUsed(10_000) && q.waitUsed(10_000), "GET_IDs complete");
            int base = StallDriver.STALLED.get();
            long d1 = buffer(drv, 0x11), d2 = buffer(drv, 0x22), d3 = buffer(drv, 0x33);
            int w1 = q.submit(VIRTIO_BLK_T_OUT, 8, d1, 4096, Layout.INDIRECT);
            int w2 = q.submit(VIRTIO_BLK_T_OUT, 8, d2, 4096, Layout.INDIRECT);    // same sector: order decides the data
            int w3 = q.submit(VIRTIO_BLK_T_OUT, 64, d3, 4096, Layout.DIRECT);
            int c = q.submit(VIRTIO_BLK_T_GET_ID, 0, id, 20, Layout.INDIRECT);   // completes while the writes hang
            q.forceKick();
            assertTrue(q.waitUsed(10_000), "GET_ID behind the hanging writes completes");
            assertEquals(c, q.lastHead());
            long end = System.nanoTime() + 10_000_000_000L;
            while (StallDriver.STALLED.get() - base < 3) {
                assertTrue(System.nanoTime() < end, "the three writes reach the node");
                Thread.sleep(2);
            }
            List<Integer> popped = List.of(w1, w2, w3);
            assertNotEquals(popped.stream().sorted().toList(), popped, "scenario: pop order differs from head order " + popped);
            assertTrue(a != b);
            int usedAtCrash = q.usedIdx();
            assertEquals(3, usedAtCrash);
            ctxA.close();   // "kill -9": device A never touches the rings again; its three writes are lost

            // ---- device B: a new "process" maps the same region through a new fd and the same guest memory
            int fd = Native.LIBC.fcntl(region.fd(), (int) F_DUP_CLOEXEC, 0);
            assertTrue(fd >= 0);
            AioContext ctxB = AioContext.start("restarted");
            BlockNode nodeB = BlockNode.open(BlockOptions.parse("driver=memory,size=16M"));
            try (InflightRegion again = InflightRegion.attach(fd, region.mmapSize(), 0, 1, QSIZE);
                 NativeBuffer check = NativeBuffer.allocate(4096, 4096)) {
                VirtioBlkDevice devB = new VirtioBlkDevice(nodeB, cfg, new AioContext[] {ctxB});
                List<Integer> irqs = new ArrayList<>();
                devB.setMemory(mem);
                devB.setStatus(S_ACKNOWLEDGE | S_DRIVER);
                devB.setDriverFeatures(drv.features());
                devB.setStatus(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
                devB.queue(0).setSize(QSIZE);
                devB.queue(0).setAddresses(q.descGpa, q.availGpa, q.usedGpa);
                devB.queue(0).setLastAvailIdx(usedAtCrash);    // QEMU's base after losing the backend: the used index
                devB.queue(0).setInflightTracker(again.queue(0, QSIZE));
                devB.setNotifier(0, () -> { synchronized (irqs) { irqs.add(1); } });
                devB.setStatus(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);   // starts the queue: recovery, resubmission
                assertNull(devB.needsResetReason());
                assertEquals(3, devB.queue(0).resubmittedAtActivation());

                List<Integer> completed = new ArrayList<>();
                for (int i = 0; i < 3; i++) {
                    assertTrue(q.waitUsed(10_000), "resubmitted request " + i + " completes");
                    completed.add(q.lastHead());
                    assertEquals(VIRTIO_BLK_S_OK, q.status(q.lastHead()));
                }
                assertEquals(popped, completed, "resubmitted in the order device A popped them");
                assertEquals(6, q.usedIdx());
                assertEquals(q.availIdx(), devB.queue(0).lastAvailIdx(), "popping resumes after the resubmitted entries");

                // a new request after recovery goes through normally and is tracked
                long d4 = buffer(drv, 0x44);
                int w4 = q.submit(VIRTIO_BLK_T_OUT, 128, d4, 4096, Layout.DIRECT);
                devB.kick(0);
                assertTrue(q.waitUsed(10_000));
                assertEquals(w4, q.lastHead());
                assertEquals(7, q.usedIdx());
                assertEquals(7, devB.stopQueue(0), "GET_VRING_BASE: every avail entry consumed once");
                synchronized (irqs) { assertFalse(irqs.isEmpty(), "the driver was interrupted"); }

                // the region ends with nothing in flight and agrees with the ring
                InflightRegion.Queue.Recovery rec = region.queue(0, QSIZE).recover(q.usedIdx());
                assertEquals(0, rec.heads().length, "nothing left in flight");
                assertEquals(7, rec.lastAvailIdx());

                // the data: W2 after W1 on sector 8, W3 and W4 where they belong
                assertEquals(0x22, readByte(ctxB, nodeB, 8, check));
                assertEquals(0x33, readByte(ctxB, nodeB, 64, check));
                assertEquals(0x44, readByte(ctxB, nodeB, 128, check));
                assertEquals(0, readByte(ctxB, nodeB, 16, check));
            } finally {
                ctxB.run(() -> nodeB.close());
                ctxB.close();
            }
        }
    }

    @Test
    void aCleanStopLeavesNothingToResubmit() throws Exception {
        VirtioBlkConfig cfg = new VirtioBlkConfig().queueSize(QSIZE);
        try (GuestMemory mem = GuestMemory.anonymous(32L << 20);
             InflightRegion region = InflightRegion.create(1, QSIZE)) {
            AioContext ctx = AioContext.start("clean");
            BlockNode node = BlockNode.open(BlockOptions.parse("driver=memory,size=16M"));
            try {
                VirtioBlkDevice dev = new VirtioBlkDevice(node, cfg, new AioContext[] {ctx});
                dev.queue(0).setInflightTracker(region.queue(0, QSIZE));
                GuestDriver drv = new GuestDriver(dev, mem, 0, 16L << 20);
                drv.initialize(-1L, QSIZE);
                GuestQueue q = drv.queue(0);
                for (int i = 0; i < 5; i++) {
                    q.submit(VIRTIO_BLK_T_OUT, 8L * i, buffer(drv, i), 4096, Layout.DIRECT);
                }
                q.forceKick();
                for (int i = 0; i < 5; i++) assertTrue(q.waitUsed(10_000));
                int next = dev.stopQueue(0);
                assertEquals(5, next);
                dev.queue(0).setLastAvailIdx(next);
                dev.queue(0).setInflightTracker(region.queue(0, QSIZE));   // a fresh view, as at every vhost-user start
                assertNull(dev.startQueue(0));
                assertEquals(0, dev.queue(0).resubmittedAtActivation());
                assertEquals(5, dev.queue(0).lastAvailIdx());
                q.submit(VIRTIO_BLK_T_OUT, 80, buffer(drv, 9), 4096, Layout.DIRECT);
                q.forceKick();
                assertTrue(q.waitUsed(10_000));
                assertEquals(6, dev.stopQueue(0));
            } finally {
                ctx.run(() -> node.close());
                ctx.close();
            }
        }
    }

    static long buffer(GuestDriver drv, int pattern) {
        long g = drv.alloc(4096, 4096);
        NativeMemory.fill(drv.host(g, 4096), 4096, (byte) pattern);
        return g;
    }

    static int readByte(AioContext ctx, BlockNode node, long sector, NativeBuffer buf) {
        int r = ctx.run(() -> node.preadv(sector << 9, 4096, IoVector.of(buf.address(), 4096), 0));
        assertEquals(0, r);
        int v = NativeMemory.getByte(buf.address()) & 0xff;
        for (int i = 1; i < 4096; i++) assertEquals(v, NativeMemory.getByte(buf.address() + i) & 0xff, "uniform sector " + sector);
        return v;
    }
}
