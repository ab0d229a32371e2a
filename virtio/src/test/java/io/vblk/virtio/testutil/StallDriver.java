package io.vblk.virtio.testutil;

import io.vblk.block.BlockDriver;
import io.vblk.block.BlockDriverFactory;
import io.vblk.block.BlockDrivers;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.Coroutine;
import io.vblk.block.IoVector;
import io.vblk.block.Sizes;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * Test double for a backend that dies with requests in flight: every read and write parks its
 * coroutine and is never completed, so the requests stay popped and unanswered until the test
 * abandons the device (closes its context), as a killed process would.
 */
public final class StallDriver extends BlockDriver {
    public static final String NAME = "stall-test";
    /** Requests parked so far, over all stall nodes. */
    public static final AtomicInteger STALLED = new AtomicInteger();

    static {
        BlockDrivers.register(new BlockDriverFactory() {
            @Override public String name() { return NAME; }
            @Override public BlockDriver open(BlockNode node, BlockOptions o) { return new StallDriver(Sizes.parse(o.remove("size"))); }
        });
    }

    /** Registers the driver (class initialisation). */
    public static void register() {}

    private final long size;

    StallDriver(long size) { this.size = size; }

    @Override public String driverName() { return NAME; }

    private int stall() {
        STALLED.incrementAndGet();
        while (true) Coroutine.park();   // never woken: the context is closed under it
    }

    @Override public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) { return stall(); }
    @Override public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) { return stall(); }
    @Override public int coFlushToDisk() { return stall(); }
    @Override public long getLength() { return size; }
}
