package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * BlockNode.startRw, the coroutine-free read/write: what it takes (aligned requests inside the
 * node, through raw to a driver that starts them), what it leaves to the coroutine path with
 * nothing changed, and that a started request is tracked and counted in flight like any other,
 * so serialising requests and drains see it.
 */
class StartRwTest extends BlockTestSupport {
    /** A RAM disk (4 KiB alignment) whose startRw copies at once and completes when the test says. */
    static final class HeldDriver extends BlockDriver {
        static final BlockDriverFactory FACTORY = new BlockDriverFactory() {
            @Override public String name() { return "held-test"; }
            @Override public BlockDriver open(BlockNode node, BlockOptions o) {
                return new HeldDriver(Sizes.parse(o.remove("size")));
            }
        };
        final NativeBuffer data;
        final List<IoCompletion> pending = new ArrayList<>(); // I/O thread only
        int started, coroutineRequests;

        HeldDriver(long size) { data = NativeBuffer.allocate(size, 4096); }

        @Override public String driverName() { return "held-test"; }
        @Override public long getLength() { return data.size(); }
        @Override public void refreshLimits(BlockLimits l) { l.requestAlignment = Math.max(l.requestAlignment, 4096); }
        @Override public void close() { data.close(); }

        @Override
        public boolean startRw(boolean write, long offset, long bytes, IoVector qiov, long qiovOffset, int flags, IoCompletion done) {
            if (write) qiov.copyToAddress(qiovOffset, data.address() + offset, bytes);
            else qiov.copyFromAddress(qiovOffset, data.address() + offset, bytes);
            pending.add(done);
            started++;
            return true;
        }

        @Override
        public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
            coroutineRequests++;
            qiov.copyFromAddress(qiovOffset, data.address() + offset, bytes);
            return 0;
        }

        @Override
        public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
            coroutineRequests++;
            qiov.copyToAddress(qiovOffset, data.address() + offset, bytes);
            return 0;
        }
    }

    private static final String RAW = "driver=raw,file.driver=held-test,file.size=1M";

    @BeforeAll
    static void register() {
        BlockDrivers.register(HeldDriver.FACTORY);
    }

    private static HeldDriver held(BlockNode raw) {
        return (HeldDriver) raw.file().node().driver();
    }

    // completions of start()'s requests, and the last one's result (a new test instance per test)
    private final AtomicInteger done = new AtomicInteger();
    private final int[] ret = {1};

    /** Calls startRw on the I/O thread; counts completions in {@link #done}, checking none runs inside the call. */
    private boolean start(BlockNode n, boolean write, long off, NativeBuffer b) {
        boolean[] out = new boolean[1];
        ctx.runOnThread(() -> {
            boolean[] inCall = {true};
            out[0] = n.startRw(write, off, b.size(), IoVector.of(b.address(), b.size()), 0, ret -> {
                assertFalse(inCall[0], "completion inside startRw");
                this.ret[0] = ret;
                done.incrementAndGet();
            });
            inCall[0] = false;
        });
        return out[0];
    }

    private void completeAll(HeldDriver d, int ret) {
        ctx.runOnThread(() -> {
            List<IoCompletion> p = new ArrayList<>(d.pending);
            d.pending.clear();
            for (IoCompletion c : p) c.done(ret);
        });
    }

    private static void await(BooleanSupplier cond) throws InterruptedException {
        for (int i = 0; i < 2000 && !cond.getAsBoolean(); i++) Thread.sleep(5);
        assertTrue(cond.getAsBoolean());
    }

    @Test
    void alignedWriteThroughRawIsTrackedUntilItsCompletion() throws Exception {
        BlockNode n = open(RAW);
        HeldDriver d = held(n);
        NativeBuffer b = pattern(8192, 3);
        long genBefore = n.file().node().writeGen();
        assertTrue(start(n, true, 64 * 1024, b));
        assertEquals(1, d.started);
        assertEquals(0, done.get());
        // tracked and in flight on both nodes while the driver holds it
        assertEquals(1, n.trackedRequestCount());
        assertEquals(1, n.file().node().trackedRequestCount());
        assertEquals(1, n.inFlight.get());
        assertEquals(1, n.file().node().inFlight.get());
        completeAll(d, 0);
        assertEquals(1, done.get());
        assertEquals(0, ret[0]);
        assertEquals(0, n.trackedRequestCount());
        assertEquals(0, n.file().node().trackedRequestCount());
        assertEquals(0, n.inFlight.get());
        assertEquals(0, n.file().node().inFlight.get());
        // the write path's bookkeeping ran: write generation and highest offset
        assertEquals(genBefore + 1, n.file().node().writeGen());
        assertEquals(64 * 1024 + 8192, n.wrHighestOffset());
        assertArrayEquals(patternBytes(8192, 3), read(n, 64 * 1024, 8192));
        assertEquals(0, d.coroutineRequests - 1, "only the read-back went through a coroutine");
    }

    @Test
    void aReadGetsTheDriversErrorAndTheNodeIsIdleAfter() throws Exception {
        BlockNode n = open(RAW);
        HeldDriver d = held(n);
        NativeBuffer b = buffer(4096);
        assertTrue(start(n, false, 0, b));
        completeAll(d, -Errno.EIO);
        assertEquals(-Errno.EIO, ret[0]);
        assertEquals(0, n.trackedRequestCount());
        assertEquals(0, n.inFlight.get());
    }

    @Test
    void whatTheCoroutinePathMustHandleIsRefusedWithNothingChanged() throws Exception {
        BlockNode n = open(RAW);
        HeldDriver d = held(n);
        assertFalse(start(n, true, 512, pattern(4096, 1)), "unaligned (RMW)");
        assertFalse(start(n, false, 0, buffer(512)), "unaligned length");
        assertFalse(start(n, false, (1 << 20) - 4096, buffer(8192)), "past the end");
        assertFalse(start(n, false, 1 << 20, buffer(4096)), "at the end");
        BlockNode wt = open("driver=raw,write-cache=off,file.driver=held-test,file.size=1M");
        assertFalse(start(wt, true, 0, pattern(4096, 1)), "write-through (FUA)");
        assertTrue(start(wt, false, 0, buffer(4096)), "a read of a write-through node");
        completeAll(held(wt), 0);
        BlockNode dz = open("driver=raw,detect-zeroes=on,file.driver=held-test,file.size=1M");
        assertFalse(start(dz, true, 0, pattern(4096, 1)), "detect-zeroes");
        BlockNode ro = open("driver=raw,read-only=on,file.driver=held-test,file.size=1M");
        assertFalse(start(ro, true, 0, pattern(4096, 1)), "read-only");
        BlockNode mem = open("driver=raw,file.driver=memory,file.size=1M");
        assertFalse(start(mem, false, 0, buffer(4096)), "a driver without startRw");
        assertEquals(0, d.started);
        assertEquals(1, done.get());
        for (BlockNode x : List.of(n, wt, dz, ro, mem)) {
            assertEquals(0, x.trackedRequestCount());
            assertEquals(0, x.inFlight.get());
            assertEquals(0, x.file().node().trackedRequestCount());
            assertEquals(0, x.file().node().inFlight.get());
        }
    }

    @Test
    void aSerialisingRequestInFlightSendsItToTheCoroutinePath() throws Exception {
        BlockNode n = open(RAW);
        BlockNode file = n.file().node();
        TrackedRequest[] rmw = new TrackedRequest[1];
        ctx.runOnThread(() -> { // what an unaligned write holds on the file node while it reads its edges
            rmw[0] = BlockIo.trackedBegin(file, TrackedRequest.Type.WRITE, 1 << 19, 4096);
            BlockIo.markSerialising(rmw[0], 4096);
        });
        assertFalse(start(n, true, 0, pattern(4096, 2)), "not around a serialising request");
        assertEquals(1, file.trackedRequestCount(), "only the serialising one is left");
        assertEquals(0, n.trackedRequestCount());
        assertEquals(0, n.inFlight.get());
        ctx.runOnThread(() -> BlockIo.trackedEnd(rmw[0]));
        assertTrue(start(n, true, 0, pattern(4096, 2)));
        completeAll(held(n), 0);
        assertEquals(1, done.get());
    }

    @Test
    void aDrainWaitsForAStartedRequestAndRefusesNewOnes() throws Exception {
        BlockNode n = open(RAW);
        HeldDriver d = held(n);
        assertTrue(start(n, false, 0, buffer(4096)));
        Running drain = spawn(() -> {
            n.drainBegin();
            return 0;
        });
        Thread.sleep(100);
        assertEquals(0, drain.finished(), "the drain waits for the started request");
        completeAll(d, 0);
        drain.await();
        assertFalse(start(n, false, 0, buffer(4096)), "drained: left to the coroutine path, which waits");
        assertEquals(0, n.inFlight.get());
        ctx.runOnThread(n::drainEnd);
        assertTrue(start(n, false, 0, buffer(4096)));
        completeAll(d, 0);
        assertEquals(2, done.get());
    }

    @Test
    void anOverlappingRmwFromTheSameCoroutineWaitsForTheStartedRequest() throws Exception {
        BlockNode n = open(RAW);
        HeldDriver d = held(n);
        NativeBuffer whole = pattern(4096, 5), part = pattern(512, 6);
        boolean[] started = new boolean[1];
        // one coroutine starts an aligned write, then writes 512 bytes inside the same block:
        // the RMW waits for the started write (no coroutine owns that one) instead of failing
        Running rmw = spawn(() -> {
            started[0] = n.startRw(true, 0, 4096, IoVector.of(whole.address(), 4096), 0, ret -> done.incrementAndGet());
            return n.pwritev(512, 512, IoVector.of(part.address(), 512), 0);
        });
        await(() -> n.trackedRequestCount() == 2);
        assertTrue(started[0]);
        assertEquals(0, rmw.finished(), "the RMW waits for the overlapping started write");
        completeAll(d, 0);
        rmw.await();
        assertEquals(0, rmw.result(0));
        assertEquals(1, done.get());
        byte[] want = patternBytes(4096, 5);
        System.arraycopy(patternBytes(512, 6), 0, want, 512, 512);
        assertArrayEquals(want, read(n, 0, 4096));
    }
}
