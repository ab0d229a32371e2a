package io.vblk.virtio.blk;

import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.testutil.Rig;
import org.junit.jupiter.api.Test;

import java.lang.management.ManagementFactory;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The device's steady state allocates nothing per request: pop, parse, merge, submit to the node,
 * complete and interrupt, measured with the I/O thread's allocation counter over 32,000 requests
 * on a memory node (batches of 32 per kick, reads and writes, direct and indirect chains).
 */
class AllocationTest {
    @Test
    void noAllocationPerRequestOnTheIoThread() throws Exception {
        var mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (Rig r = new Rig("driver=memory,size=16M", new VirtioBlkConfig(), -1L)) {
            long[] tid = new long[1];
            r.ctx.runOnThread(() -> tid[0] = Thread.currentThread().threadId());
            long buf = r.buffer(32 * 4096, 1);
            Runnable batch = () -> {
                for (int i = 0; i < 32; i++) {
                    int type = (i & 1) == 0 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
                    r.q.submit(type, 16L * i, buf + 4096L * i, 4096, (i & 3) == 1 ? Layout.INDIRECT : Layout.DIRECT);
                }
                r.q.forceKick();
                for (int i = 0; i < 32; i++) assertTrue(r.q.waitUsed(5000));
            };
            for (int i = 0; i < 300; i++) batch.run(); // warm up pools, JIT
            long before = mx.getThreadAllocatedBytes(tid[0]);
            int batches = 1000;
            for (int i = 0; i < batches; i++) batch.run();
            long after = mx.getThreadAllocatedBytes(tid[0]);
            double perRequest = (after - before) / (batches * 32.0);
            System.out.printf("I/O thread allocated %.2f bytes per request%n", perRequest);
            // a kick costs one task-queue node (a few dozen bytes per 32 requests); requests cost nothing
            assertTrue(perRequest < 8, "bytes allocated per request on the I/O thread: " + perRequest);
        }
    }
}
