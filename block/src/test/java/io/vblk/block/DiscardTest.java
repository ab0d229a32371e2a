package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vblk.block.drivers.MemoryDriver;
import org.junit.jupiter.api.Test;

/** bdrv_co_pdiscard: ignored with discard=ignore (the default is unmap, as in qemu-io), split to the discard alignment and maximum. */
class DiscardTest extends BlockTestSupport {
    @Test
    void ignoredWithDiscardIgnore() throws Exception {
        BlockNode n = open("driver=memory,size=1M,discard=ignore");
        assertEquals(0, run(() -> n.pdiscard(0, 65536)));
        assertEquals(0, memory(n).discards());
    }

    @Test
    void splitToAlignmentAndMaximum() throws Exception {
        BlockNode n = open("driver=memory,size=1M,discard=unmap,discard-align=64K,max-discard=64K");
        MemoryDriver m = memory(n);
        long gen = n.writeGen();
        DirtyBitmap bm = new DirtyBitmap("d", 65536);
        n.addDirtyBitmap(bm);
        // [1000,65536) head, [65536,131072) [131072,196608) capped at 64K, [196608,200000) tail
        assertEquals(0, run(() -> n.pdiscard(1000, 199_000)));
        assertEquals(4, m.discards());
        assertEquals(gen + 1, n.writeGen());
        assertEquals(4, bm.dirtyCount());
        assertEquals(0, n.wrHighestOffset(), "discard does not move the highest written offset");
    }

    @Test
    void childrenInheritDiscardUnmap() throws Exception {
        BlockNode n = open("driver=raw,discard=unmap,file.driver=memory,file.size=1M");
        assertEquals(0, run(() -> n.pdiscard(0, 4096)));
        assertEquals(1, memory(n).discards());
        BlockNode i = open("driver=raw,discard=ignore,file.driver=memory,file.size=1M");
        assertEquals(0, run(() -> i.pdiscard(0, 4096)));
        assertEquals(0, memory(i).discards(), "the file child inherited discard=ignore");
    }
}
