package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.AioContext;
import io.vblk.block.IoVector;
import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The bench loop itself allocates nothing per request: with a path that completes inline (like
 * the null driver), the I/O thread's allocated bytes do not grow with the request count. This
 * isolates the CLI's loop (offsets, latency histogram, counters) from what lies below it; parking
 * and waking a coroutine is the block runtime's business and measured there.
 */
class BenchAllocationTest {
    static final class InlinePath implements BenchPath {
        final AioContext ctx = AioContext.start("alloc-bench");
        @Override public AioContext context() { return ctx; }
        @Override public long length() { return 1L << 30; }
        @Override public int flush() { return 0; }
        @Override public int request(boolean write, long offset, IoVector qiov) {
            return 0;
        }
        @Override public void close() { ctx.close(); }
    }

    private static long allocated(long tid) {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getThreadAllocatedBytes(tid);
    }

    @Test
    void noAllocationPerRequest() {
        Assumptions.assumeTrue(ManagementFactory.getThreadMXBean() instanceof com.sun.management.ThreadMXBean,
                "thread allocation counters are not available in this JVM");
        try (InlinePath p = new InlinePath()) {
            long[] tid = new long[1];
            p.ctx.runOnThread(() -> tid[0] = Thread.currentThread().threadId());
            for (boolean random : new boolean[] {false, true}) {
                BenchCommand.Config warm = new BenchCommand.Config(false, 50_000, 16, 4096, 4096, 0, random, 0, 0, "block", false);
                BenchCommand.runBench(warm, p);   // warm up: JIT, coroutine pool
                long before = allocated(tid[0]);
                BenchCommand.Config cfg = new BenchCommand.Config(false, 200_000, 16, 4096, 4096, 0, random, 0, 0, "block", false);
                BenchCommand.Result r = BenchCommand.runBench(cfg, p);
                long bytes = allocated(tid[0]) - before;
                assertEquals(200_000, r.ops());
                // a per-request allocation of even one small object would be >= 16 bytes x 200k = 3.2 MB
                assertTrue(bytes < 200_000, "I/O thread allocated " + bytes + " bytes for 200000 requests (random=" + random + ")");
            }
        }
    }
}
