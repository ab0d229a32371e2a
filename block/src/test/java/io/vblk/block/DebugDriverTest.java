package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.drivers.DebugDriver;
import io.vblk.block.drivers.MemoryDriver;
import java.util.function.IntSupplier;
import org.junit.jupiter.api.Test;

/** The debug driver (blkdebug): injected errors at every generic event, rules from options, power loss. */
class DebugDriverTest extends BlockTestSupport {
    private static final String GRAPH = "driver=debug,file.driver=memory,file.size=1M,file.align=4096";

    /** Injects EIO once at {@code ev}, runs {@code op} (which must fire it), then checks the node still works. */
    private void injectOnceAndRecover(BlkDebugEvent ev, int errno, java.util.function.Function<BlockNode, IntSupplier> op) throws Exception {
        BlockNode n = open(GRAPH);
        DebugDriver dbg = debug(n);
        assertEquals(0, write(n, 0, patternBytes(65536, 1), 0));
        assertEquals(0, run(n::flush));
        dbg.injectError(ev, errno, true);
        assertEquals(-errno, run(op.apply(n)), ev + ": the request returns the injected error");
        assertEquals(1, dbg.injectedErrors(), ev.optionName());
        // usable afterwards: the same request succeeds, and data written now reads back
        assertEquals(0, run(op.apply(n)), ev + ": the node is usable after the error");
        byte[] data = patternBytes(3000, 7);
        assertEquals(0, write(n, 10_000, data, 0));
        assertArrayEquals(data, read(n, 10_000, 3000));
        assertEquals(0, run(n::flush));
    }

    private IntSupplier writeOf(BlockNode n, long off, int len) {
        NativeBuffer b = pattern(len, len);
        return () -> n.pwritev(off, len, IoVector.of(b.address(), len), 0);
    }

    @Test
    void pwritev() throws Exception {
        injectOnceAndRecover(BlkDebugEvent.PWRITEV, Errno.EIO, n -> writeOf(n, 8192, 4096));
    }

    @Test
    void pwritevZero() throws Exception {
        injectOnceAndRecover(BlkDebugEvent.PWRITEV_ZERO, Errno.ENOSPC, n -> () -> n.pwriteZeroes(8192, 8192, 0));
    }

    @Test
    void pwritevRmwHead() throws Exception {
        injectOnceAndRecover(BlkDebugEvent.PWRITEV_RMW_HEAD, Errno.EIO, n -> writeOf(n, 8192 + 100, 5000));
    }

    @Test
    void pwritevRmwAfterHead() throws Exception {
        injectOnceAndRecover(BlkDebugEvent.PWRITEV_RMW_AFTER_HEAD, Errno.EIO, n -> writeOf(n, 8192 + 100, 5000));
    }

    @Test
    void pwritevRmwTail() throws Exception {
        injectOnceAndRecover(BlkDebugEvent.PWRITEV_RMW_TAIL, Errno.EIO, n -> writeOf(n, 8192, 5000));
    }

    @Test
    void pwritevRmwAfterTail() throws Exception {
        injectOnceAndRecover(BlkDebugEvent.PWRITEV_RMW_AFTER_TAIL, Errno.EIO, n -> writeOf(n, 8192, 5000));
    }

    @Test
    void pwritevDoneFailsTheNextIo() throws Exception {
        BlockNode n = open(GRAPH);
        DebugDriver dbg = debug(n);
        dbg.injectError(BlkDebugEvent.PWRITEV_DONE, Errno.EIO, true);
        assertEquals(0, run(writeOf(n, 0, 4096)), "the write itself completed before the event");
        NativeBuffer b = buffer(4096);
        assertEquals(-Errno.EIO, run(() -> n.preadv(0, 4096, IoVector.of(b.address(), 4096), 0)));
        assertEquals(0, run(() -> n.preadv(0, 4096, IoVector.of(b.address(), 4096), 0)));
    }

    @Test
    void flushToOs() throws Exception {
        injectOnceAndRecover(BlkDebugEvent.FLUSH_TO_OS, Errno.EIO, n -> {
            IntSupplier w = writeOf(n, 0, 4096);
            return () -> {
                int r = w.getAsInt();
                return r < 0 ? r : n.flush();
            };
        });
    }

    @Test
    void flushToDisk() throws Exception {
        injectOnceAndRecover(BlkDebugEvent.FLUSH_TO_DISK, Errno.EIO, n -> {
            IntSupplier w = writeOf(n, 0, 4096);
            return () -> {
                int r = w.getAsInt();
                return r < 0 ? r : n.flush();
            };
        });
    }

    @Test
    void failedRmwWriteLeavesTheOldData() throws Exception {
        BlockNode n = open(GRAPH);
        DebugDriver dbg = debug(n);
        byte[] init = patternBytes(65536, 1);
        assertEquals(0, write(n, 0, init, 0));
        dbg.injectError(BlkDebugEvent.PWRITEV_RMW_AFTER_TAIL, Errno.EIO, true);
        assertEquals(-Errno.EIO, run(writeOf(n, 4096, 5000)));
        assertArrayEquals(init, memory(n).snapshot(0, 65536));
    }

    @Test
    void alwaysRulesKeepFailingUntilCleared() throws Exception {
        BlockNode n = open(GRAPH);
        DebugDriver dbg = debug(n);
        dbg.injectError(BlkDebugEvent.PWRITEV, Errno.EIO, false);
        for (int i = 0; i < 3; i++) {
            assertEquals(-Errno.EIO, run(writeOf(n, 0, 4096)));
        }
        dbg.clearRules();
        assertEquals(0, run(writeOf(n, 0, 4096)));
    }

    @Test
    void rulesFromOptionsWithOffsetAndIotype() throws Exception {
        BlockNode n = open("driver=debug,file.driver=memory,file.size=1M,"
                + "inject-error.0.event=pwritev,inject-error.0.errno=ENOSPC,inject-error.0.offset=12288,inject-error.0.iotype=write");
        NativeBuffer b = buffer(4096);
        assertEquals(0, run(writeOf(n, 0, 4096)), "offset outside the rule's offset");
        assertEquals(-Errno.ENOSPC, run(writeOf(n, 8192, 8192)), "range contains offset 12288");
        assertEquals(0, run(() -> n.preadv(12288, 4096, IoVector.of(b.address(), 4096), 0)), "reads are not in the iotype mask");
    }

    @Test
    void powerLossDropsUnflushedWrites() throws Exception {
        BlockNode n = open("driver=debug,power-loss=on,file.driver=memory,file.size=1M");
        DebugDriver dbg = debug(n);
        MemoryDriver m = memory(n);
        byte[] a = patternBytes(10000, 1);
        byte[] b = patternBytes(3000, 2);
        assertEquals(0, write(n, 1000, a, 0));
        assertEquals(0, run(n::flush));
        assertArrayEquals(a, m.snapshot(1000, 10000), "flushed data reached the disk");
        assertEquals(0, dbg.unflushedPages());
        assertEquals(0, write(n, 5000, b, 0));
        assertEquals(0, run(() -> n.pwriteZeroes(20000, 5000, 0)));
        assertTrue(dbg.unflushedPages() > 0);
        // before the crash the node reads its own writes
        assertArrayEquals(b, read(n, 5000, 3000));
        byte[] flushed = new byte[30000];
        System.arraycopy(a, 0, flushed, 1000, 10000);
        assertArrayEquals(flushed, m.snapshot(0, 30000), "unflushed writes never reached the disk");
        assertTrue(dbg.crash() > 0);
        assertEquals(0, dbg.unflushedPages());
        assertArrayEquals(flushed, read(n, 0, 30000), "after the crash reads see only flushed data");
    }

    @Test
    void fuaWriteSurvivesPowerLoss() throws Exception {
        BlockNode n = open("driver=debug,power-loss=on,file.driver=memory,file.size=1M");
        byte[] a = patternBytes(4096, 9);
        assertEquals(0, write(n, 8192, a, RequestFlags.FUA));
        debug(n).crash();
        assertArrayEquals(a, read(n, 8192, 4096));
    }
}
