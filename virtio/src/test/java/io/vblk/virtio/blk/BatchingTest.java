package io.vblk.virtio.blk;

import io.vblk.block.NativeMemory;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.testutil.CountingDriver;
import io.vblk.virtio.testutil.Rig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * One kick = one batch: 32 requests reach the driver in one deferred "io_submit" (the counting test
 * double stands in for LinuxAio's plug/unplug until the aio branch is merged), adjacent requests
 * are merged like QEMU's multireq, and the batch gets one interrupt.
 */
class BatchingTest {
    static final String NODE = "driver=" + CountingDriver.NAME + ",size=16M";

    private static CountingDriver counting(Rig r) {
        return (CountingDriver) r.node.driver();
    }

    private static void reapAll(Rig r, int n) {
        for (int i = 0; i < n; i++) {
            assertTrue(r.q.waitUsed(10_000), "completion " + i);
            assertEquals(VIRTIO_BLK_S_OK, r.q.status(r.q.lastHead()));
        }
    }

    @ParameterizedTest(name = "directRw={0}")
    @ValueSource(booleans = {true, false})
    void thirtyTwoScatteredRequestsOneKickOneSubmit(boolean directRw) throws Exception {
        VirtioBlkConfig cfg = new VirtioBlkConfig();
        cfg.directRw = directRw;
        try (Rig r = new Rig(NODE, cfg, -1L)) {
            long buf = r.buffer(32 * 4096, 0x5a);
            for (int i = 0; i < 32; i++) {
                int type = i % 2 == 0 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
                // every other 4k block: nothing is adjacent, so nothing merges
                assertTrue(r.q.submit(type, i * 16L, buf + 4096L * i, 4096, Layout.DIRECT) >= 0);
            }
            r.q.forceKick();
            reapAll(r, 32);
            CountingDriver d = counting(r);
            assertEquals(1, d.submitCalls, "one io_submit for the kick");
            assertEquals(32, d.iocbs);
            assertEquals(32, r.dev.stats().submissions());
            assertEquals(directRw ? 32 : 0, r.dev.stats().directSubmissions(), "started without a coroutine");
            assertEquals(directRw ? 32 : 0, d.directStarts);
            assertEquals(0, r.dev.stats().merged());
            assertEquals(1, r.q.interrupts(), "one interrupt for the batch");
        }
    }

    @Test
    void adjacentWritesMergeInSectorOrder() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), -1L)) {
            long buf = r.buffer(32 * 4096, 0);
            long h = r.host(buf, 32 * 4096);
            for (int i = 0; i < 32 * 4096; i++) NativeMemory.putByte(h + i, (byte) (i / 4096 + 1));
            // submitted in reverse order: merging sorts by sector first
            for (int i = 31; i >= 0; i--) {
                assertTrue(r.q.submit(VIRTIO_BLK_T_OUT, 8L * i, buf + 4096L * i, 4096, Layout.DIRECT) >= 0);
            }
            r.q.forceKick();
            reapAll(r, 32);
            CountingDriver d = counting(r);
            assertEquals(1, d.iocbs, "32 adjacent writes became one request");
            assertEquals(31, r.dev.stats().merged());
            for (int i = 0; i < 32; i++) {
                assertEquals(i + 1, NativeMemory.getByte(d.address() + 4096L * i + 100), "block " + i);
            }
        }
    }

    @Test
    void mergingStopsAtThirtyTwoAndAtDirectionChanges() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), -1L)) {
            long buf = r.buffer(40 * 4096, 1);
            for (int i = 0; i < 40; i++) {
                assertTrue(r.q.submit(VIRTIO_BLK_T_OUT, 8L * i, buf + 4096L * i, 4096, Layout.DIRECT) >= 0);
            }
            r.q.submit(VIRTIO_BLK_T_IN, 0, buf, 4096, Layout.DIRECT);
            r.q.forceKick();
            reapAll(r, 41);
            CountingDriver d = counting(r);
            assertEquals(3, d.iocbs, "32 merged + 8 merged + 1 read");
            assertEquals(1, d.submitCalls);
        }
    }

    @Test
    void noMergingWhenDisabled() throws Exception {
        VirtioBlkConfig c = new VirtioBlkConfig();
        c.requestMerging = false;
        try (Rig r = new Rig(NODE, c, -1L)) {
            long buf = r.buffer(8 * 4096, 1);
            for (int i = 0; i < 8; i++) r.q.submit(VIRTIO_BLK_T_OUT, 8L * i, buf + 4096L * i, 4096, Layout.DIRECT);
            r.q.forceKick();
            reapAll(r, 8);
            assertEquals(8, counting(r).iocbs);
            assertEquals(1, counting(r).submitCalls);
        }
    }

    @Test
    void eventIdxSuppressesInterruptsTheDriverDidNotAskFor() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), -1L)) {
            assertTrue((r.drv.features() & bit(F_EVENT_IDX)) != 0);
            long buf = r.buffer(4096, 1);
            // the driver asks for an interrupt only when used.idx passes 5
            r.q.setUsedEvent(5);
            for (int round = 0; round < 8; round++) {
                r.q.submit(VIRTIO_BLK_T_IN, 0, buf, 4096, Layout.DIRECT);
                r.q.forceKick();
                long deadline = System.nanoTime() + 5_000_000_000L;
                while (r.q.usedIdx() != round + 1 && System.nanoTime() < deadline) Thread.onSpinWait();
                assertEquals(round + 1, r.q.usedIdx());
            }
            // first decision always signals (used 1); then only crossing used_event=5 (used 6)
            Thread.sleep(50);
            assertEquals(2, r.q.interrupts());
        }
    }

    @Test
    void noInterruptFlagWithoutEventIdx() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), -1L & ~bit(F_EVENT_IDX))) {
            long buf = r.buffer(4096, 1);
            r.q.setNoInterrupt(true);
            r.q.submit(VIRTIO_BLK_T_IN, 0, buf, 4096, Layout.DIRECT);
            r.q.forceKick();
            assertTrue(r.q.waitUsed(5000));
            Thread.sleep(20);
            assertEquals(0, r.q.interrupts());
            r.q.setNoInterrupt(false);
            r.q.submit(VIRTIO_BLK_T_IN, 0, buf, 4096, Layout.DIRECT);
            r.q.forceKick();
            assertTrue(r.q.waitUsed(5000));
            Thread.sleep(20);
            assertEquals(1, r.q.interrupts());
        }
    }

    @Test
    void popToCompletionTimeIsSampledPerDirection() throws Exception {
        try (Rig r = new Rig(NODE, new VirtioBlkConfig(), -1L)) {
            assertEquals(0, r.dev.meanRequestLatencyNanos(VirtioBlkDevice.LatencyKind.READ));
            long buf = r.buffer(4096, 3);
            int n = 2 * QueueWorker.LATENCY_SAMPLE;
            for (int i = 0; i < n; i++) {
                assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_OUT, 8L * i, buf, 4096, Layout.DIRECT));
            }
            assertEquals(0, r.dev.meanRequestLatencyNanos(VirtioBlkDevice.LatencyKind.READ), "no read yet");
            assertTrue(r.dev.meanRequestLatencyNanos(VirtioBlkDevice.LatencyKind.WRITE) > 0);
            for (int i = 0; i < n; i++) {
                assertEquals(VIRTIO_BLK_S_OK, r.run(VIRTIO_BLK_T_IN, 8L * i, buf, 4096, Layout.DIRECT));
            }
            assertTrue(r.dev.meanRequestLatencyNanos(VirtioBlkDevice.LatencyKind.READ) > 0);
            assertEquals(0, r.dev.meanRequestLatencyNanos(VirtioBlkDevice.LatencyKind.OTHER), "no flush, discard or GET_ID");
        }
    }
}
