package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.drivers.MemoryDriver;
import org.junit.jupiter.api.Test;

/** Zero writes (bdrv_co_do_zero_pwritev, bdrv_co_do_pwrite_zeroes) and detect-zeroes. */
class ZeroWriteTest extends BlockTestSupport {
    private static final int SIZE = 256 * 1024;

    private byte[] fill(BlockNode n) {
        byte[] init = patternBytes(SIZE, 42);
        assertEquals(0, write(n, 0, init, 0));
        return init;
    }

    private void zeroAndCheck(BlockNode n, byte[] shadow, long off, long len, int flags) {
        assertEquals(0, run(() -> n.pwriteZeroes(off, len, flags)), "zero " + off + "+" + len);
        java.util.Arrays.fill(shadow, (int) off, (int) (off + len), (byte) 0);
        assertArrayEquals(shadow, memory(n).snapshot(0, SIZE), "after zero " + off + "+" + len);
    }

    @Test
    void driverZeroesTheAlignedMiddleAndRmwTheEdges() throws Exception {
        BlockNode n = open("driver=memory,size=256K,align=4096");
        MemoryDriver m = memory(n);
        byte[] shadow = fill(n);
        long w0 = m.writes();
        long z0 = m.zeroWrites();
        long r0 = m.reads();
        zeroAndCheck(n, shadow, 4096 + 100, 3 * 4096, 0);      // head and tail unaligned, two whole blocks
        assertEquals(2, m.reads() - r0, "RMW reads for head and tail");
        assertEquals(2, m.writes() - w0, "head and tail blocks written back");
        assertEquals(1, m.zeroWrites() - z0, "aligned middle as one driver zero write");
        zeroAndCheck(n, shadow, 65536 + 10, 20, 0);             // inside one block
        zeroAndCheck(n, shadow, 131072, 8192, 0);               // aligned
    }

    @Test
    void withoutDriverSupportZeroBuffersAreWritten() throws Exception {
        BlockNode n = open("driver=memory,size=256K,align=512,write-zeroes=off");
        MemoryDriver m = memory(n);
        byte[] shadow = fill(n);
        long w0 = m.writes();
        zeroAndCheck(n, shadow, 1024, 100_000, 0);
        assertEquals(0, m.zeroWrites());
        assertTrue(m.writes() - w0 >= 1, "fallback writes");
        zeroAndCheck(n, shadow, 700, 10, 0);
    }

    @Test
    void fallbackIsSplitToMaxTransfer() throws Exception {
        BlockNode n = open("driver=memory,size=256K,write-zeroes=off,max-transfer=16K");
        MemoryDriver m = memory(n);
        byte[] shadow = fill(n);
        long w0 = m.writes();
        zeroAndCheck(n, shadow, 0, 64 * 1024, 0);
        assertEquals(4, m.writes() - w0);
    }

    @Test
    void noFallbackFailsWithEnotsupAndChangesNothing() throws Exception {
        BlockNode n = open("driver=memory,size=256K,write-zeroes=off");
        byte[] init = fill(n);
        assertEquals(-Errno.ENOTSUP, run(() -> n.pwriteZeroes(0, 65536, RequestFlags.NO_FALLBACK)));
        assertArrayEquals(init, memory(n).snapshot(0, SIZE));
        // with driver support NO_FALLBACK is fine
        BlockNode s = open("driver=memory,size=256K");
        fill(s);
        assertEquals(0, run(() -> s.pwriteZeroes(0, 65536, RequestFlags.NO_FALLBACK)));
        // a misaligned NO_FALLBACK request would need RMW: refused before anything is written
        BlockNode a = open("driver=memory,size=256K,align=4096");
        byte[] ainit = fill(a);
        assertEquals(-Errno.ENOTSUP, run(() -> a.pwriteZeroes(100, 8192, RequestFlags.NO_FALLBACK)));
        assertArrayEquals(ainit, memory(a).snapshot(0, SIZE));
        assertTrue(java.util.Arrays.equals(new byte[65536], memory(s).snapshot(0, 65536)));
    }

    @Test
    void zeroWritesAreSplitToTheDriversAlignmentAndMaximum() throws Exception {
        BlockNode n = open("driver=memory,size=256K,zero-align=16K,max-write-zeroes=32K");
        MemoryDriver m = memory(n);
        byte[] shadow = fill(n);
        long z0 = m.zeroWrites();
        // 1000..(1000+100000): head piece to 16K, then 32K, 32K, then the rest aligned down, then the tail
        zeroAndCheck(n, shadow, 1000, 100_000, 0);
        // pieces: [1000,16384) [16384,49152) [49152,81920) [81920,98304) [98304,101000)
        assertEquals(5, m.zeroWrites() - z0);
    }

    @Test
    void detectZeroesTurnsZeroBuffersIntoZeroWrites() throws Exception {
        BlockNode off = open("driver=memory,size=256K");
        BlockNode on = open("driver=memory,size=256K,detect-zeroes=on");
        BlockNode unmap = open("driver=memory,size=256K,detect-zeroes=unmap,discard=unmap");
        NativeBuffer zeros = buffer(8192);
        for (BlockNode n : new BlockNode[] {off, on, unmap}) {
            fill(n);
            assertEquals(0, write(n, 8192, zeros, 0));
            assertTrue(java.util.Arrays.equals(new byte[8192], memory(n).snapshot(8192, 8192)));
        }
        assertEquals(0, memory(off).zeroWrites());
        assertEquals(1, memory(on).zeroWrites());
        assertEquals(0, memory(on).lastZeroFlags() & RequestFlags.MAY_UNMAP);
        assertEquals(1, memory(unmap).zeroWrites());
        assertEquals(RequestFlags.MAY_UNMAP, memory(unmap).lastZeroFlags() & RequestFlags.MAY_UNMAP);
        // non-zero data is written normally
        assertEquals(0, write(on, 0, pattern(4096, 1), 0));
        assertEquals(1, memory(on).zeroWrites());
    }

    @Test
    void mayUnmapNeedsDiscardUnmap() throws Exception {
        BlockNode ignore = open("driver=memory,size=256K,discard=ignore");
        BlockNode unmap = open("driver=memory,size=256K,discard=unmap");
        assertEquals(0, run(() -> ignore.pwriteZeroes(0, 4096, RequestFlags.MAY_UNMAP)));
        assertEquals(0, memory(ignore).lastZeroFlags() & RequestFlags.MAY_UNMAP);
        assertEquals(0, run(() -> unmap.pwriteZeroes(0, 4096, RequestFlags.MAY_UNMAP)));
        assertEquals(RequestFlags.MAY_UNMAP, memory(unmap).lastZeroFlags() & RequestFlags.MAY_UNMAP);
    }
}
