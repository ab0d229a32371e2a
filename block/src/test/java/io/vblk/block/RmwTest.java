package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vblk.block.drivers.DebugDriver;
import io.vblk.block.drivers.MemoryDriver;
import org.junit.jupiter.api.Test;

/**
 * Read-modify-write of unaligned heads and tails (bdrv_co_pwritev) and padded reads, on a node with
 * request_alignment 4096, checked byte for byte against a shadow array.
 */
class RmwTest extends BlockTestSupport {
    static final int ALIGN = 4096;
    static final int SIZE = 64 * 1024;

    /** Offsets inside a block: aligned, sector-aligned, odd, middle, last byte. */
    static final int[] IN_BLOCK = {0, 1, 512, 2047, 4095};
    /** Lengths: inside one block, exactly one block, across blocks, several blocks. */
    static final int[] LENGTHS = {1, 511, 4096, 4097, 6000, 3 * 4096 + 1234};

    @Test
    void everyHeadTailCombinationMatchesTheShadow() throws Exception {
        BlockNode n = open("driver=debug,file.driver=memory,file.size=64K,file.align=4096");
        assertEquals(ALIGN, n.limits().requestAlignment);
        MemoryDriver mem = memory(n);
        DebugDriver dbg = debug(n);
        byte[] shadow = new byte[SIZE];
        byte[] init = patternBytes(SIZE, 99);
        assertEquals(0, write(n, 0, init, 0));
        System.arraycopy(init, 0, shadow, 0, SIZE);
        int seed = 0;
        for (int block = 1; block <= 2; block++) {
            for (int in : IN_BLOCK) {
                for (int len : LENGTHS) {
                    long off = (long) block * ALIGN + in;
                    byte[] data = patternBytes(len, ++seed);
                    long end = off + len;
                    boolean head = off % ALIGN != 0;
                    boolean tail = end % ALIGN != 0;
                    boolean oneBlock = off / ALIGN == (end - 1) / ALIGN;
                    long readsBefore = mem.reads();
                    long headEv = dbg.eventCount(BlkDebugEvent.PWRITEV_RMW_HEAD);
                    long tailEv = dbg.eventCount(BlkDebugEvent.PWRITEV_RMW_TAIL);
                    long writesBefore = mem.writes();

                    assertEquals(0, write(n, off, data, 0), "write " + off + "+" + len);
                    System.arraycopy(data, 0, shadow, (int) off, len);

                    int expectedReads = (head ? 1 : 0) + (tail && !(head && oneBlock) ? 1 : 0);
                    String what = "write " + off + "+" + len + " head=" + head + " tail=" + tail + " oneBlock=" + oneBlock;
                    assertEquals(expectedReads, mem.reads() - readsBefore, what + ": RMW reads");
                    assertEquals(head ? 1 : 0, dbg.eventCount(BlkDebugEvent.PWRITEV_RMW_HEAD) - headEv, what);
                    assertEquals(tail && !(head && oneBlock) ? 1 : 0, dbg.eventCount(BlkDebugEvent.PWRITEV_RMW_TAIL) - tailEv, what);
                    assertEquals(1, mem.writes() - writesBefore, what + ": one aligned write");
                    assertArrayEquals(shadow, mem.snapshot(0, SIZE), what);
                }
            }
        }
    }

    @Test
    void unalignedReadsArePaddedAndReturnOnlyTheirBytes() throws Exception {
        BlockNode n = open("driver=memory,size=64K,align=4096");
        byte[] init = patternBytes(SIZE, 5);
        assertEquals(0, write(n, 0, init, 0));
        for (int in : IN_BLOCK) {
            for (int len : LENGTHS) {
                long off = ALIGN + in;
                byte[] got = read(n, off, len);
                byte[] want = new byte[len];
                System.arraycopy(init, (int) off, want, 0, len);
                assertArrayEquals(want, got, "read " + off + "+" + len);
            }
        }
    }

    @Test
    void rmwAtTheEndOfAnUnalignedNodeReadsZerosPastEof() throws Exception {
        // 10000 bytes; align 512: the last block is partly past EOF
        BlockNode n = open("driver=memory,size=12288,align=4096");
        byte[] data = patternBytes(100, 3);
        assertEquals(0, write(n, 12288 - 50, new byte[50], 0));
        assertEquals(0, write(n, 8192 + 10, data, 0));
        byte[] got = read(n, 8192, 4096);
        for (int i = 0; i < 4096; i++) {
            byte want = i >= 10 && i < 110 ? data[i - 10] : 0;
            assertEquals(want, got[i], "byte " + i);
        }
    }
}
