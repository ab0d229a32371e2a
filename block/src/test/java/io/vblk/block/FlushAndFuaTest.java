package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.drivers.DebugDriver;
import io.vblk.block.drivers.MemoryDriver;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** FUA emulation, fragmentation, write/flush generations and flush coalescing (bdrv_co_flush). */
class FlushAndFuaTest extends BlockTestSupport {
    @Test
    void emulatedFuaFlushesOncePerFragmentedRequest() throws Exception {
        BlockNode n = open("driver=memory,size=1M,fua=off,max-transfer=4K");
        MemoryDriver m = memory(n);
        assertEquals(0, write(n, 0, pattern(16384, 1), RequestFlags.FUA));
        assertEquals(4, m.writes(), "16K in 4K fragments");
        assertEquals(0, m.fuaWrites(), "FUA is not passed to a driver that lacks it");
        assertEquals(1, m.flushes(), "one flush after the last fragment");
        assertEquals(0, write(n, 65536, pattern(16384, 2), 0));
        assertEquals(1, m.flushes(), "no FUA, no flush");
        assertArrayEquals(patternBytes(16384, 1), m.snapshot(0, 16384));
    }

    @Test
    void nativeFuaGoesToEveryFragmentWithoutFlush() throws Exception {
        BlockNode n = open("driver=memory,size=1M,max-transfer=4K");
        MemoryDriver m = memory(n);
        assertEquals(0, write(n, 0, pattern(16384, 1), RequestFlags.FUA));
        assertEquals(4, m.fuaWrites());
        assertEquals(0, m.flushes());
    }

    @Test
    void emulatedFuaOnZeroWritesFlushesOnce() throws Exception {
        BlockNode n = open("driver=memory,size=1M,fua=off,write-zeroes=off,max-transfer=4K");
        MemoryDriver m = memory(n);
        assertEquals(0, run(() -> n.pwriteZeroes(0, 16384, RequestFlags.FUA)));
        assertEquals(4, m.writes());
        assertEquals(1, m.flushes());
    }

    @Test
    void writethroughMakesEveryWriteFua() throws Exception {
        BlockNode n = open("driver=memory,size=1M,fua=off,write-cache=off");
        MemoryDriver m = memory(n);
        assertEquals(0, write(n, 0, pattern(4096, 1), 0));
        assertEquals(1, m.flushes());
        n.setWriteCacheEnabled(true);
        assertEquals(0, write(n, 0, pattern(4096, 1), 0));
        assertEquals(1, m.flushes());
    }

    @Test
    void fragmentedReadsAndWritesKeepTheData() throws Exception {
        BlockNode n = open("driver=memory,size=1M,max-transfer=4K");
        MemoryDriver m = memory(n);
        byte[] data = patternBytes(20000, 3);
        assertEquals(0, write(n, 512, data, 0));
        assertEquals(5, m.writes());        // 20000 bytes in 4K pieces
        long r0 = m.reads();
        assertArrayEquals(data, read(n, 512, 20000));
        assertEquals(5, m.reads() - r0);
    }

    @Test
    void readsPastTheEndAreZeroFilled() throws Exception {
        BlockNode n = open("driver=raw,size=6000,file.driver=memory,file.size=64K");
        BlockNode file = n.file().node();
        assertEquals(0, write(file, 0, patternBytes(65536, 4), 0));
        assertEquals(6000, n.getLength());
        byte[] got = read(n, 4096, 8192);
        byte[] all = patternBytes(65536, 4);
        for (int i = 0; i < 8192; i++) {
            byte want = 4096 + i < 6000 ? all[4096 + i] : 0;
            assertEquals(want, got[i], "byte " + (4096 + i));
        }
    }

    @Test
    void flushIsSkippedWhenNothingWasWritten() throws Exception {
        BlockNode n = open("driver=memory,size=1M");
        MemoryDriver m = memory(n);
        assertEquals(0, write(n, 0, pattern(4096, 1), 0));
        assertEquals(0, run(n::flush));
        assertEquals(1, m.flushes());
        assertEquals(n.writeGen(), n.flushedGen());
        assertEquals(0, run(n::flush));
        assertEquals(1, m.flushes(), "clean node: flush_to_disk skipped");
        assertEquals(0, write(n, 0, pattern(4096, 2), 0));
        assertEquals(0, run(n::flush));
        assertEquals(2, m.flushes());
    }

    @Test
    void noFlushSkipsTheDiskPart() throws Exception {
        BlockNode n = open("driver=memory,size=1M,cache.no-flush=on");
        assertEquals(0, write(n, 0, pattern(4096, 1), 0));
        assertEquals(0, run(n::flush));
        assertEquals(0, memory(n).flushes());
    }

    @Test
    void flushRecursesIntoTheFileChild() throws Exception {
        BlockNode n = open("driver=raw,file.driver=memory,file.size=1M");
        assertEquals(0, write(n, 0, pattern(4096, 1), 0));
        assertEquals(0, run(n::flush));
        assertEquals(1, memory(n).flushes());
    }

    @Test
    void concurrentFlushesCoalesce() throws Exception {
        BlockNode n = open("driver=debug,file.driver=memory,file.size=1M");
        DebugDriver dbg = debug(n);
        MemoryDriver m = memory(n);
        assertEquals(0, write(n, 0, pattern(4096, 1), 0));
        dbg.breakAt(BlkDebugEvent.FLUSH_TO_DISK, "f");
        Running first = spawn(n::flush);
        assertTrue(dbg.waitBreak("f", 10, TimeUnit.SECONDS));
        Running queued = spawn(n::flush, n::flush, n::flush);
        Thread.sleep(50);
        assertEquals(0, queued.finished(), "one active flush per node; the others queue");
        dbg.resume("f");
        first.await();
        queued.await();
        for (int i = 0; i < 3; i++) {
            assertEquals(0, queued.result(i));
        }
        assertEquals(1, m.flushes(), "queued flushes found nothing new to flush");
        assertEquals(1, dbg.eventCount(BlkDebugEvent.FLUSH_TO_DISK));
        assertEquals(4, dbg.eventCount(BlkDebugEvent.FLUSH_TO_OS));
    }

    @Test
    void failedFlushLeavesTheGenerationAndIsRetried() throws Exception {
        BlockNode n = open("driver=debug,file.driver=memory,file.size=1M");
        DebugDriver dbg = debug(n);
        MemoryDriver m = memory(n);
        assertEquals(0, write(n, 0, pattern(4096, 1), 0));
        long flushedBefore = n.flushedGen();
        dbg.injectError(BlkDebugEvent.FLUSH_TO_DISK, Errno.EIO, true);
        assertEquals(-Errno.EIO, run(n::flush));
        assertEquals(flushedBefore, n.flushedGen());
        assertEquals(0, m.flushes());
        assertEquals(0, run(n::flush));
        assertEquals(1, m.flushes());
        assertEquals(n.writeGen(), n.flushedGen());
    }
}
