package io.vblk.virtio.testutil;

import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.NativeMemory;
import io.vblk.virtio.blk.VirtioBlkConfig;
import io.vblk.virtio.blk.VirtioBlkDevice;
import io.vblk.virtio.driver.GuestDriver;
import io.vblk.virtio.driver.GuestQueue;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.memory.GuestMemory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A device on a node, guest memory and a guest driver, for tests. */
public final class Rig implements AutoCloseable {
    public static final long MEM = 32L << 20;
    public final GuestMemory mem;
    public final AioContext ctx;
    public final BlockNode node;
    public final VirtioBlkDevice dev;
    public final GuestDriver drv;
    public GuestQueue q;
    public int lastHead, lastLen;

    public Rig(String nodeOptions, VirtioBlkConfig cfg, long wanted) throws Exception {
        CountingDriver.register();
        mem = GuestMemory.anonymous(MEM);
        ctx = AioContext.start("rig");
        node = BlockNode.open(BlockOptions.parse(nodeOptions));
        dev = new VirtioBlkDevice(node, cfg, new AioContext[] {ctx});
        drv = new GuestDriver(dev, mem, 0, 16L << 20);
        drv.initialize(wanted, Math.min(cfg.queueSize, 256));
        q = drv.queue(0);
        // DRIVER_OK kicks each started queue once (requests may already wait in the ring), on the
        // queue's thread. Let that pass run on the empty ring now, so that it cannot pop half of a
        // batch a test is still adding and split it over two passes.
        ctx.runOnThread(() -> { });
    }

    public Rig() throws Exception {
        this("driver=memory,size=16M", new VirtioBlkConfig(), -1L);
    }

    /** Host address of guest buffer. */
    public long host(long gpa, long len) { return mem.translate(gpa, len); }

    /** Allocates a guest buffer filled with {@code pattern}. */
    public long buffer(int len, int pattern) {
        long g = drv.alloc(len, 4096);
        NativeMemory.fill(host(g, len), len, (byte) pattern);
        return g;
    }

    /** Submits one request, kicks, waits for its completion; returns its status. */
    public int run(int type, long sector, long gpa, int len, Layout layout) {
        int head = q.submit(type, sector, gpa, len, layout);
        assertTrue(head >= 0, "no free descriptors");
        q.forceKick();
        assertTrue(q.waitUsed(10_000), "request did not complete");
        assertEquals(head, q.lastHead());
        lastHead = head;
        lastLen = q.lastLen();
        return q.status(head);
    }

    /** Waits up to 10 s for {@code value} to reach {@code want}, then asserts it is exactly that. */
    public static void waitFor(java.util.function.LongSupplier value, long want, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (value.getAsLong() < want) {
            assertTrue(System.nanoTime() < deadline, what);
            Thread.sleep(1);
        }
        assertEquals(want, value.getAsLong(), what);
    }

    @Override
    public void close() {
        ctx.run(() -> node.close());
        ctx.close();
        mem.close();
    }
}
