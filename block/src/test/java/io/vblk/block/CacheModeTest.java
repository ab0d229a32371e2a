package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.drivers.MemoryDriver;
import org.junit.jupiter.api.Test;

/** Cache modes as QEMU maps them: O_DIRECT, FUA on every write (writethrough), no-flush (unsafe). */
class CacheModeTest extends BlockTestSupport {
    private BlockNode openWith(CacheMode mode) throws BlockException {
        BlockNode n = BlockNode.open(mode.applyTo(BlockOptions.parse("driver=debug,file.driver=memory,file.size=1M,file.fua=off")));
        return n;
    }

    /** Flushes that reached the memory driver after one plain write and one explicit flush. */
    private long[] writeThenFlush(BlockNode n) {
        MemoryDriver m = memory(n);
        assertEquals(0, write(n, 0, pattern(4096, 1), 0));
        long afterWrite = m.flushes();
        assertEquals(0, run(n::flush));
        long afterFlush = m.flushes();
        run(() -> {
            n.closeWithoutFlush();
            return 0;
        });
        return new long[] {afterWrite, afterFlush};
    }

    @Test
    void modesMapToDirectFuaAndNoFlush() throws Exception {
        BlockNode none = openWith(CacheMode.NONE);
        assertTrue(none.isDirect());
        assertTrue(none.file().node().isDirect(), "children inherit O_DIRECT");
        assertEquals(0, writeThenFlush(none)[0]);
        assertEquals(1, writeThenFlush(openWith(CacheMode.WRITEBACK))[1]);

        BlockNode wt = openWith(CacheMode.WRITETHROUGH);
        assertFalse(wt.isDirect());
        assertFalse(wt.writeCacheEnabled());
        assertEquals(1, writeThenFlush(wt)[0], "writethrough: the write itself is flushed (FUA)");

        BlockNode ds = openWith(CacheMode.DIRECTSYNC);
        assertTrue(ds.isDirect());
        assertEquals(1, writeThenFlush(ds)[0]);

        BlockNode unsafe = openWith(CacheMode.UNSAFE);
        assertTrue(unsafe.isNoFlush());
        assertTrue(unsafe.file().node().isNoFlush(), "children inherit no-flush");
        assertEquals(0, writeThenFlush(unsafe)[1], "unsafe: flushes never reach the disk");
    }
}
