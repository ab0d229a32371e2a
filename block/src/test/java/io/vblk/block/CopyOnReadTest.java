package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Copy-on-read from a backing child (bdrv_co_do_copy_on_readv). */
class CopyOnReadTest extends BlockTestSupport {
    @BeforeAll
    static void register() {
        BlockDrivers.register(OverlayTestDriver.FACTORY);
    }

    @Test
    void corReadCopiesWholeClustersFromBackingIntoTheNode() throws Exception {
        BlockNode n = open("driver=overlay-test,size=64K,backing.driver=memory,backing.size=64K");
        OverlayTestDriver ov = (OverlayTestDriver) n.driver();
        BlockNode backing = n.backing().node();
        byte[] base = patternBytes(65536, 1);
        // fill the backing file directly (it is read-only for the overlay)
        NativeMemory.copyFromArray(base, 0, memory(backing).address(), 65536);

        byte[] mine = patternBytes(4096, 2);
        assertEquals(0, write(n, 0, mine, 0));

        // plain read: data from the backing file, nothing copied
        assertArrayEquals(java.util.Arrays.copyOfRange(base, 5000, 9000), read(n, 5000, 4000));
        assertFalse(ov.isAllocated(4096));

        // COR read of 100..10100: cluster 0 is ours, clusters 1 and 2 come from backing and get copied
        NativeBuffer b = buffer(10000);
        assertEquals(0, run(() -> n.preadv(100, 10000, IoVector.of(b.address(), 10000), RequestFlags.COPY_ON_READ)));
        byte[] got = new byte[10000];
        b.copyTo(0, got, 0, 10000);
        byte[] want = new byte[10000];
        System.arraycopy(mine, 100, want, 0, 3996);
        System.arraycopy(base, 4096, want, 3996, 10000 - 3996);
        assertArrayEquals(want, got);
        assertTrue(ov.isAllocated(4096));
        assertTrue(ov.isAllocated(8192));
        assertFalse(ov.isAllocated(12288));

        // whole clusters were copied: the rest of cluster 2 is served from the node now
        int before = ov.backingReads;
        assertArrayEquals(java.util.Arrays.copyOfRange(base, 8192, 12288), read(n, 8192, 4096));
        assertEquals(before, ov.backingReads);
    }

    @Test
    void copyOnReadOptionAppliesToEveryRead() throws Exception {
        BlockNode n = open("driver=overlay-test,size=64K,copy-on-read=on,backing.driver=memory,backing.size=64K");
        OverlayTestDriver ov = (OverlayTestDriver) n.driver();
        read(n, 20000, 10);
        assertTrue(ov.isAllocated(16384));
    }
}
