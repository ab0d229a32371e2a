package io.vblk.virtio.blk;

import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.Errno;
import io.vblk.block.NativeMemory;
import io.vblk.virtio.driver.GuestDriver;
import io.vblk.virtio.driver.GuestQueue;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.testutil.CountingDriver;
import io.vblk.virtio.testutil.Rig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.concurrent.atomic.AtomicInteger;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/** werror/rerror, the malformed-chain policies, reset, stop/start of queues, multiqueue. */
class PoliciesAndResetTest {
    static final String NODE = "driver=" + CountingDriver.NAME + ",size=16M";

    private static CountingDriver counting(Rig r) {
        return (CountingDriver) r.node.driver();
    }

    /** The error policies hold on both ways a read or write is started (with or without a coroutine). */
    private static VirtioBlkConfig cfg(boolean directRw) {
        VirtioBlkConfig c = new VirtioBlkConfig();
        c.directRw = directRw;
        return c;
    }

    @ParameterizedTest(name = "directRw={0}")
    @ValueSource(booleans = {true, false})
    void werrorReportAndIgnore(boolean directRw) throws Exception {
        try (Rig r = new Rig(NODE, cfg(directRw).werror(ErrorPolicy.REPORT), -1L)) {
            counting(r).failWrites = Errno.EIO;
            long b = r.buffer(4096, 1);
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_OUT, 0, b, 4096, Layout.DIRECT));
            assertEquals(Errno.EIO, r.dev.stats().lastErrno());
        }
        try (Rig r = new Rig(NODE, cfg(directRw).werror(ErrorPolicy.IGNORE).rerror(ErrorPolicy.REPORT), -1L)) {
            counting(r).failWrites = Errno.EIO;
            counting(r).failReads = Errno.EIO;
            long b = r.buffer(4096, 1);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, 0, b, 4096, Layout.DIRECT));
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_IN, 0, b, 4096, Layout.DIRECT));
        }
    }

    @ParameterizedTest(name = "directRw={0}")
    @ValueSource(booleans = {true, false})
    void werrorStopKeepsTheRequestAndRetriesOnResume(boolean directRw) throws Exception {
        try (Rig r = new Rig(NODE, cfg(directRw).werror(ErrorPolicy.STOP), -1L)) {
            CountingDriver d = counting(r);
            d.failWrites = Errno.EIO;
            long b = r.buffer(4096, 0x6b);
            int head = r.q.submit(VIRTIO_BLK_T_OUT, 8, b, 4096, Layout.DIRECT);
            r.q.forceKick();
            assertFalse(r.q.waitUsed(300), "a stopped request is not completed");
            assertTrue(r.dev.isPaused());
            assertEquals(1, r.dev.heldRequests());
            // requests arriving while paused wait too
            long b2 = r.buffer(4096, 0x6c);
            r.q.submit(VIRTIO_BLK_T_OUT, 16, b2, 4096, Layout.DIRECT);
            r.q.forceKick();
            assertFalse(r.q.waitUsed(100));
            d.failWrites = 0;
            r.dev.resume();
            assertTrue(r.q.waitUsed(5000));
            assertEquals(head, r.q.lastHead());
            assertEquals(VIRTIO_BLK_S_OK, r.q.status(head));
            assertTrue(r.q.waitUsed(5000));
            assertEquals(VIRTIO_BLK_S_OK, r.q.status(r.q.lastHead()));
            assertEquals(0x6b, NativeMemory.getByte(d.address() + 8 * 512) & 0xff);
            assertEquals(0x6c, NativeMemory.getByte(d.address() + 16 * 512) & 0xff);
            assertFalse(r.dev.isPaused());
            // the failed write, its retry and the second write: all without a coroutine when allowed
            assertEquals(directRw ? 3 : 0, d.directStarts);
        }
    }

    @ParameterizedTest(name = "directRw={0}")
    @ValueSource(booleans = {true, false})
    void werrorEnospcStopsOnlyOnEnospc(boolean directRw) throws Exception {
        try (Rig r = new Rig(NODE, cfg(directRw).werror(ErrorPolicy.ENOSPC), -1L)) {
            CountingDriver d = counting(r);
            long b = r.buffer(4096, 1);
            d.failWrites = Errno.EIO;
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_OUT, 0, b, 4096, Layout.DIRECT));
            d.failWrites = Errno.ENOSPC;
            r.q.submit(VIRTIO_BLK_T_OUT, 0, b, 4096, Layout.DIRECT);
            r.q.forceKick();
            assertFalse(r.q.waitUsed(200));
            assertTrue(r.dev.isPaused());
            d.failWrites = 0;
            r.dev.resume();
            assertTrue(r.q.waitUsed(5000));
            assertEquals(VIRTIO_BLK_S_OK, r.q.status(r.q.lastHead()));
        }
    }

    @Test
    void flushErrorFollowsWerror() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig().werror(ErrorPolicy.REPORT), -1L)) {
            long b = r.buffer(4096, 1);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, 0, b, 4096, Layout.DIRECT)); // a write to flush
            counting(r).failFlush = Errno.EIO;
            assertEquals(VIRTIO_BLK_S_IOERR, r.run(VIRTIO_BLK_T_FLUSH, 0, 0, 0, Layout.DIRECT));
        }
    }

    /** A chain with only 8 readable bytes: no header. */
    private static int shortHeaderChain(Rig r) {
        GuestQueue q = r.q;
        int head = 0;
        GuestQueue.putDesc(q.descHost(), head, q.hdrGpa, 8, VIRTQ_DESC_F_NEXT, 1);
        GuestQueue.putDesc(q.descHost(), 1, q.statusGpa, 1, VIRTQ_DESC_F_WRITE, 0);
        q.makeAvailable(head);
        return head;
    }

    @Test
    void malformedChainNeedsResetByDefault() throws Exception {
        try (Rig r = new Rig()) {
            AtomicInteger cfgIrq = new AtomicInteger();
            r.dev.setConfigInterrupt(cfgIrq::incrementAndGet);
            shortHeaderChain(r);
            r.q.forceKick();
            long deadline = System.nanoTime() + 5_000_000_000L;
            while ((r.dev.status() & S_DEVICE_NEEDS_RESET) == 0 && System.nanoTime() < deadline) Thread.sleep(1);
            assertNotEquals(0, r.dev.status() & S_DEVICE_NEEDS_RESET);
            assertEquals(1, cfgIrq.get());
            assertTrue(r.dev.needsResetReason().contains("header"));
            assertEquals(0, r.q.usedIdx(), "nothing returned");
            // no more processing until reset: a good request stays unanswered
            long b = r.buffer(4096, 1);
            r.q.submit(VIRTIO_BLK_T_IN, 0, b, 4096, Layout.DIRECT);
            r.q.forceKick();
            assertFalse(r.q.waitUsed(100));
            // reset, set up again, and a good chain is served
            r.dev.reset();
            assertEquals(0, r.dev.status());
            r.drv.initialize(-1L, 256);
            r.q = r.drv.queue(0);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, 0, b, 4096, Layout.DIRECT));
        }
    }

    @Test
    void malformedChainDropPolicyReturnsLenZero() throws Exception {
        try (Rig r = new Rig("driver=memory,size=1M", new VirtioBlkConfig().malformedChains(MalformedChainPolicy.DROP), -1L)) {
            int head = shortHeaderChain(r);
            r.q.forceKick();
            assertTrue(r.q.waitUsed(5000));
            assertEquals(head, r.q.lastHead());
            assertEquals(0, r.q.lastLen());
            assertEquals(0, r.dev.status() & S_DEVICE_NEEDS_RESET);
            long b = r.buffer(4096, 1);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, 0, b, 4096, Layout.DIRECT));
            assertEquals(1, r.dev.stats().dropped());
        }
    }

    @Test
    void corruptRingNeedsResetEvenWithDropPolicy() throws Exception {
        try (Rig r = new Rig("driver=memory,size=1M", new VirtioBlkConfig().malformedChains(MalformedChainPolicy.DROP), -1L)) {
            r.q.setAvailIdxRaw(1000);
            r.q.forceKick();
            long deadline = System.nanoTime() + 5_000_000_000L;
            while ((r.dev.status() & S_DEVICE_NEEDS_RESET) == 0 && System.nanoTime() < deadline) Thread.sleep(1);
            assertTrue(r.dev.needsResetReason().contains("ahead"));
        }
    }

    @Test
    void stopQueueReturnsNextAvailAndStartResumesFromTheDriversIndices() throws Exception {
        try (Rig r = new Rig()) {
            long b = r.buffer(4096, 1);
            for (int i = 0; i < 3; i++) assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, i * 8L, b, 4096, Layout.DIRECT));
            assertEquals(3, r.dev.stopQueue(0));
            int head = r.q.submit(VIRTIO_BLK_T_IN, 0, b, 4096, Layout.DIRECT);
            r.q.forceKick();
            assertFalse(r.q.waitUsed(100), "a stopped queue is not processed");
            r.dev.queue(0).setLastAvailIdx(3);
            assertNull(r.dev.startQueue(0));
            assertTrue(r.q.waitUsed(5000));
            assertEquals(head, r.q.lastHead());
            assertEquals(4, r.dev.queue(0).usedIdx());
        }
    }

    @Test
    void multiqueueOnTwoContextsSharesTheNode() throws Exception {
        try (GuestMemory mem = GuestMemory.memfd(32 << 20)) {
            AioContext c0 = AioContext.start("q0"), c1 = AioContext.start("q1");
            BlockNode node = BlockNode.open(BlockOptions.parse("driver=memory,size=16M"));
            try {
                VirtioBlkDevice dev = new VirtioBlkDevice(node, new VirtioBlkConfig().numQueues(2), new AioContext[] {c0, c1});
                assertNotEquals(0, dev.deviceFeatures() & bit(VIRTIO_BLK_F_MQ));
                assertEquals(2, java.nio.ByteBuffer.wrap(dev.readConfig(CFG_NUM_QUEUES, 2)).order(java.nio.ByteOrder.LITTLE_ENDIAN).getShort());
                GuestDriver drv = new GuestDriver(dev, mem, 0, 16 << 20);
                drv.initialize(128);
                assertEquals(2, drv.numQueues());
                long w = drv.alloc(4096, 4096), rd = drv.alloc(4096, 4096);
                NativeMemory.fill(mem.translate(w, 4096), 4096, (byte) 0x21);
                GuestQueue q0 = drv.queue(0), q1 = drv.queue(1);
                q0.submit(VIRTIO_BLK_T_OUT, 64, w, 4096, Layout.DIRECT);
                q0.forceKick();
                assertTrue(q0.waitUsed(5000));
                q1.submit(VIRTIO_BLK_T_IN, 64, rd, 4096, Layout.INDIRECT);
                q1.forceKick();
                assertTrue(q1.waitUsed(5000));
                assertEquals(VIRTIO_BLK_S_OK, q1.status(q1.lastHead()));
                assertEquals(0x21, NativeMemory.getByte(mem.translate(rd + 4095, 1)));
                assertSame(c1, dev.queueContext(1));
                dev.reset();
            } finally {
                c0.run(node::close);
                c0.close();
                c1.close();
            }
        }
    }

    @Test
    void resetAndStopDrainInFlightRequests() throws Exception {
        try (Rig r = new Rig("driver=null,size=16M,latency-ns=100000000", new VirtioBlkConfig(), -1L)) {
            long b = r.buffer(8 * 4096, 1);
            for (int i = 0; i < 8; i++) r.q.submit(VIRTIO_BLK_T_IN, 16L * i, b + 4096L * i, 4096, Layout.DIRECT);
            r.q.forceKick();
            while (r.dev.queue(0).lastAvailIdx() != 8) Thread.sleep(1); // popped, now sleeping 100 ms in the node
            assertEquals(0, r.q.usedIdx());
            long t0 = System.nanoTime();
            assertEquals(8, r.dev.stopQueue(0));
            assertTrue(System.nanoTime() - t0 > 20_000_000L, "stop waited for the in-flight requests");
            assertEquals(8, r.q.usedIdx(), "in-flight requests completed before the queue stopped");
            // and reset drains too
            assertNull(r.dev.startQueue(0));
            for (int i = 0; i < 8; i++) r.q.submit(VIRTIO_BLK_T_IN, 16L * i, b + 4096L * i, 4096, Layout.DIRECT);
            r.q.forceKick();
            while (r.dev.queue(0).lastAvailIdx() != 16) Thread.sleep(1);
            r.dev.reset();
            assertEquals(16, r.q.usedIdx());
            assertEquals(0, r.dev.queue(0).lastAvailIdx());
            r.drv.initialize(-1L, 256);
            r.q = r.drv.queue(0);
            assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_FLUSH, 0, 0, 0, Layout.DIRECT));
        }
    }
}
