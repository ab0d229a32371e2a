package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;

/**
 * The aligned read/write path allocates nothing per request: measured with the JVM's per-thread
 * allocation counter around many requests inside one coroutine (a unit-test stand-in for the JMH
 * gc profiler run of the benchmark).
 */
class HotPathAllocationTest extends BlockTestSupport {
    private static final int N = 200_000;

    private static long allocated() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    private long bytesPerRequest(BlockNode n, boolean write, int flags) {
        NativeBuffer b = buffer(4096);
        IoVector v = IoVector.of(b.address(), 4096);
        long[] out = new long[1];
        int r = run(() -> {
            for (int i = 0; i < N; i++) {       // warm-up: JIT, pools
                int x = write ? n.pwritev((i & 255) * 4096L, 4096, v, flags) : n.preadv((i & 255) * 4096L, 4096, v, flags);
                if (x < 0) return x;
            }
            long a0 = allocated();
            for (int i = 0; i < N; i++) {
                int x = write ? n.pwritev((i & 255) * 4096L, 4096, v, flags) : n.preadv((i & 255) * 4096L, 4096, v, flags);
                if (x < 0) return x;
            }
            out[0] = allocated() - a0;
            return 0;
        });
        assertEquals(0, r);
        return out[0];
    }

    @Test
    void alignedReadsAndWritesOnNullAllocateNothing() throws Exception {
        BlockNode n = open("driver=null,size=1G");
        long reads = bytesPerRequest(n, false, 0);
        long writes = bytesPerRequest(n, true, 0);
        long fua = bytesPerRequest(n, true, RequestFlags.FUA);
        // allow a few stray bytes (a counter read itself, a resized pool once), not one object per request
        assertTrue(reads < N / 16, "reads allocated " + reads + " bytes for " + N + " requests");
        assertTrue(writes < N / 16, "writes allocated " + writes + " bytes for " + N + " requests");
        assertTrue(fua < N / 16, "FUA writes allocated " + fua + " bytes for " + N + " requests");
    }

    @Test
    void alignedRequestsOnMemoryAllocateNothing() throws Exception {
        BlockNode n = open("driver=memory,size=1M,align=4096");
        long reads = bytesPerRequest(n, false, 0);
        long writes = bytesPerRequest(n, true, 0);
        assertTrue(reads < N / 16, "reads allocated " + reads);
        assertTrue(writes < N / 16, "writes allocated " + writes);
    }
}
