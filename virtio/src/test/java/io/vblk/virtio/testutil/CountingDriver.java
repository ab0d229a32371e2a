package io.vblk.virtio.testutil;

import io.vblk.block.AioContext;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockDriverFactory;
import io.vblk.block.BlockDrivers;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.Coroutine;
import io.vblk.block.IoCompletion;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.Sizes;

import java.util.ArrayList;
import java.util.List;

/**
 * Test double of an AIO-backed driver: a RAM disk whose reads and writes queue an "iocb" and park,
 * and whose deferred "io_submit" (run once at the end of the context's defer section, like
 * LinuxAio's plug/unplug) counts the call and its iocbs, then completes them. Requests started
 * without a coroutine (startRw) join the same batch and complete from a task. It can fail writes
 * or reads with a chosen errno, for the error policies.
 */
public final class CountingDriver extends BlockDriver {
    public static final String NAME = "counting-test";

    static {
        BlockDrivers.register(new BlockDriverFactory() {
            @Override public String name() { return NAME; }
            @Override public BlockDriver open(BlockNode node, BlockOptions o) {
                return new CountingDriver(Sizes.parse(o.remove("size")));
            }
        });
    }

    /** Registers the driver (class initialisation). */
    public static void register() {}

    private final NativeBuffer buf;
    private final long size;
    private final List<Coroutine> queued = new ArrayList<>();
    private final List<IoCompletion> started = new ArrayList<>();
    private final List<Integer> startedRet = new ArrayList<>();
    private final Runnable submit = this::ioSubmit;
    public volatile int submitCalls, iocbs, maxBatch, directStarts;
    public volatile boolean directRw = true; // take BlockNode.startRw's requests (false: coroutines only)
    public volatile int failWrites, failReads, failFlush; // errno to fail with, 0 = succeed

    CountingDriver(long size) {
        this.buf = NativeBuffer.allocate(size, 4096);
        this.size = size;
    }

    public long address() { return buf.address(); }

    @Override public String driverName() { return NAME; }

    private int queue(int ret) {
        AioContext ctx = AioContext.current();
        queued.add(Coroutine.current());
        ctx.defer(submit);
        Coroutine.park();
        return ret;
    }

    private void ioSubmit() {
        int n = queued.size() + started.size();
        submitCalls++;
        iocbs += n;
        maxBatch = Math.max(maxBatch, n);
        List<Coroutine> cos = new ArrayList<>(queued);
        queued.clear();
        for (Coroutine c : cos) c.wake();
        AioContext ctx = AioContext.current();
        for (int i = 0; i < started.size(); i++) {
            IoCompletion done = started.get(i);
            int ret = startedRet.get(i);
            ctx.execute(() -> done.done(ret)); // a task, as LinuxAio delivers a completion
        }
        started.clear();
        startedRet.clear();
    }

    /** Reads and writes started without a coroutine ({@link #directRw}) join the same deferred "io_submit". */
    @Override
    public boolean startRw(boolean write, long offset, long bytes, IoVector qiov, long qiovOffset, int flags, IoCompletion done) {
        if (!directRw) return false;
        int fail = write ? failWrites : failReads;
        if (fail == 0) {
            if (write) qiov.copyToAddress(qiovOffset, buf.address() + offset, bytes);
            else qiov.copyFromAddress(qiovOffset, buf.address() + offset, bytes);
        }
        started.add(done);
        startedRet.add(fail == 0 ? 0 : -fail);
        directStarts++;
        AioContext.current().defer(submit);
        return true;
    }

    @Override
    public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        if (failReads != 0) return queue(-failReads);
        qiov.copyFromAddress(qiovOffset, buf.address() + offset, bytes);
        return queue(0);
    }

    @Override
    public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        if (failWrites != 0) return queue(-failWrites);
        qiov.copyToAddress(qiovOffset, buf.address() + offset, bytes);
        return queue(0);
    }

    @Override
    public int coPwriteZeroes(long offset, long bytes, int flags) {
        buf.fill(offset, bytes, (byte) 0);
        return 0;
    }

    @Override
    public int coPdiscard(long offset, long bytes) {
        buf.fill(offset, bytes, (byte) 0);
        return 0;
    }

    @Override
    public int coFlushToOs() {
        return failFlush != 0 ? -failFlush : 0;
    }

    @Override public long getLength() { return size; }

    @Override public void close() { buf.close(); }
}
