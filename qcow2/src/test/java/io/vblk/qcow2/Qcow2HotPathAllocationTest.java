package io.vblk.qcow2;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;

/**
 * DESIGN.md: the hot path allocates nothing per request. For qcow2 that is reading allocated
 * clusters and rewriting COPIED clusters in place: measured with the per-thread allocation counter
 * around many 4 KiB requests in one coroutine (qcow2 over a memory file).
 */
class Qcow2HotPathAllocationTest {
    private static final int N = 100_000;

    private static long allocated() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    @Test
    void readsAndInPlaceRewritesAllocateNothingPerRequest() throws Exception {
        try (TestImage t = new TestImage(64L << 20); NativeBuffer b = NativeBuffer.allocate(4096, 4096)) {
            t.create(new Qcow2Creator.Options().size(32 << 20).clusterSize(65536));
            t.open("");
            IoVector v = IoVector.of(b.address(), 4096);
            // allocate 16 MiB first
            for (long off = 0; off < (16 << 20); off += 4096) {
                long o = off;
                assertEquals(0, t.run(() -> t.q.pwritev(o, 4096, v, 0, 0)));
            }
            long[] out = new long[2];
            int r = t.run(() -> {
                for (int pass = 0; pass < 2; pass++) {
                    long a0 = allocated();
                    for (int i = 0; i < N; i++) {
                        int x = t.q.pwritev(((i * 7919L) % 4096) * 4096, 4096, v, 0, 0);
                        if (x < 0) return x;
                    }
                    long a1 = allocated();
                    for (int i = 0; i < N; i++) {
                        int x = t.q.preadv(((i * 104729L) % 4096) * 4096, 4096, v, 0, 0);
                        if (x < 0) return x;
                    }
                    long a2 = allocated();
                    out[0] = a1 - a0; // the second pass counts (after JIT warm-up)
                    out[1] = a2 - a1;
                }
                return 0;
            });
            assertEquals(0, r);
            assertTrue(out[0] < N / 16, "in-place rewrites allocated " + out[0] + " bytes for " + N + " requests");
            assertTrue(out[1] < N / 16, "reads allocated " + out[1] + " bytes for " + N + " requests");
        }
    }
}
