package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.drivers.DebugDriver;
import io.vblk.block.drivers.MemoryDriver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.IntSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

/** Shared fixtures for request-path tests: an I/O context, graphs opened from option strings, native buffers. */
abstract class BlockTestSupport {
    protected AioContext ctx;
    private final List<NativeBuffer> buffers = new ArrayList<>();
    private final List<BlockNode> nodes = new ArrayList<>();

    @BeforeEach
    void startContext() {
        ctx = AioContext.start("test-io");
    }

    @AfterEach
    void stopContext() {
        for (BlockNode n : nodes) {
            ctx.run(() -> {
                n.closeWithoutFlush();
                return 0;
            });
        }
        ctx.close();
        for (NativeBuffer b : buffers) {
            b.close();
        }
    }

    protected BlockNode open(String opts) throws BlockException {
        BlockNode n = BlockNode.open(BlockOptions.parse(opts));
        nodes.add(n);
        return n;
    }

    protected static MemoryDriver memory(BlockNode n) {
        BlockNode cur = n;
        while (!(cur.driver() instanceof MemoryDriver)) {
            cur = cur.file().node();
        }
        return (MemoryDriver) cur.driver();
    }

    protected static DebugDriver debug(BlockNode n) {
        return (DebugDriver) n.driver();
    }

    protected NativeBuffer buffer(long size) {
        NativeBuffer b = NativeBuffer.allocate(size, 4096);
        buffers.add(b);
        return b;
    }

    /** A buffer filled with {@code size} bytes of a pattern derived from {@code seed}. */
    protected NativeBuffer pattern(int size, int seed) {
        NativeBuffer b = buffer(size);
        b.copyFrom(patternBytes(size, seed), 0, 0, size);
        return b;
    }

    protected static byte[] patternBytes(int size, int seed) {
        byte[] a = new byte[size];
        for (int i = 0; i < size; i++) {
            a[i] = (byte) (seed * 31 + i * 7 + (i >> 8) + 1);
        }
        return a;
    }

    protected int write(BlockNode n, long off, NativeBuffer b, int flags) {
        return ctx.run(() -> n.pwritev(off, b.size(), IoVector.of(b.address(), b.size()), flags));
    }

    protected int write(BlockNode n, long off, byte[] data, int flags) {
        NativeBuffer b = buffer(Math.max(1, data.length));
        b.copyFrom(data, 0, 0, data.length);
        return ctx.run(() -> n.pwritev(off, data.length, IoVector.of(b.address(), data.length), flags));
    }

    protected byte[] read(BlockNode n, long off, int len) {
        NativeBuffer b = buffer(Math.max(1, len));
        b.fill(0, b.size(), (byte) 0x5a);
        int r = ctx.run(() -> n.preadv(off, len, IoVector.of(b.address(), len), 0));
        assertEquals(0, r, "read " + off + "+" + len + ": " + Errno.name(-r));
        byte[] out = new byte[len];
        b.copyTo(0, out, 0, len);
        return out;
    }

    protected int run(IntSupplier body) {
        return ctx.run(body);
    }

    /** Starts bodies as concurrent coroutines on the context; the returned handle waits for their results. */
    protected Running spawn(IntSupplier... bodies) {
        Running r = new Running(bodies.length);
        for (int i = 0; i < bodies.length; i++) {
            int idx = i;
            ctx.execute(() -> ctx.spawn(() -> {
                int v;
                try {
                    v = bodies[idx].getAsInt();
                } catch (Throwable t) {
                    t.printStackTrace();
                    v = Integer.MIN_VALUE;
                }
                r.results.set(idx, v);
                r.doneFlags.set(idx, 1);
                r.latch.countDown();
            }));
        }
        return r;
    }

    static final class Running {
        final AtomicIntegerArray results;
        final java.util.concurrent.atomic.AtomicIntegerArray doneFlags;
        final CountDownLatch latch;

        Running(int n) {
            results = new AtomicIntegerArray(n);
            doneFlags = new java.util.concurrent.atomic.AtomicIntegerArray(n);
            latch = new CountDownLatch(n);
        }

        int finished() {
            return (int) (doneFlags.length() - latch.getCount());
        }

        boolean isDone(int i) {
            return doneFlags.get(i) != 0;
        }

        void await() throws InterruptedException {
            assertTrue(latch.await(20, TimeUnit.SECONDS), "requests did not finish: " + finished() + "/" + doneFlags.length());
        }

        int result(int i) {
            return results.get(i);
        }
    }
}
