package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.drivers.DebugDriver;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** In-flight counting and drain (bdrv_drained_begin/end). */
class DrainTest extends BlockTestSupport {
    @Test
    void drainFromAThreadWaitsForEveryRequestInFlight() throws Exception {
        BlockNode n = open("driver=debug,file.driver=null,file.size=1G");
        DebugDriver dbg = debug(n);
        NativeBuffer b = buffer(4096 * 4);
        for (int i = 0; i < 4; i++) {
            dbg.breakAt(BlkDebugEvent.PWRITEV, "w" + i);
        }
        Running r = spawn(
                () -> n.pwritev(0, 4096, IoVector.of(b.address(), 4096), 0),
                () -> n.pwritev(4096, 4096, IoVector.of(b.address() + 4096, 4096), 0),
                () -> n.pwritev(8192, 4096, IoVector.of(b.address() + 8192, 4096), 0),
                () -> n.pwritev(12288, 4096, IoVector.of(b.address() + 12288, 4096), 0));
        for (int i = 0; i < 4; i++) {
            assertTrue(dbg.waitBreak("w" + i, 10, TimeUnit.SECONDS));
        }
        assertEquals(4, n.inFlight());
        java.util.concurrent.CountDownLatch drained = new java.util.concurrent.CountDownLatch(1);
        Thread drainer = new Thread(() -> {
            n.drainBegin();
            drained.countDown();
        });
        drainer.start();
        for (int i = 0; i < 3; i++) {
            dbg.resume("w" + i);
        }
        assertFalse(drained.await(100, TimeUnit.MILLISECONDS), "drainBegin returned with a request in flight");
        assertEquals(1, n.inFlight());
        dbg.resume("w3");
        assertTrue(drained.await(10, TimeUnit.SECONDS));
        assertEquals(0, n.inFlight());
        assertEquals(0, n.trackedRequestCount());
        n.drainEnd();
        r.await();
        for (int i = 0; i < 4; i++) {
            assertEquals(0, r.result(i));
        }
    }

    @Test
    void newRequestsWaitWhileDrained() throws Exception {
        BlockNode n = open("driver=memory,size=1M");
        NativeBuffer b = buffer(4096);
        n.drainBegin();
        Running r = spawn(() -> n.pwritev(0, 4096, IoVector.of(b.address(), 4096), 0));
        Thread.sleep(100);
        assertFalse(r.isDone(0), "a request entered a drained node");
        assertTrue(n.isQuiesced());
        n.drainEnd();
        r.await();
        assertEquals(0, r.result(0));
    }

    @Test
    void drainInACoroutineParksUntilAPausedRequestEnds() throws Exception {
        BlockNode n = open("driver=debug,file.driver=memory,file.size=1M");
        DebugDriver dbg = debug(n);
        NativeBuffer b = buffer(4096);
        dbg.breakAt(BlkDebugEvent.PWRITEV, "w");
        Running w = spawn(() -> n.pwritev(0, 4096, IoVector.of(b.address(), 4096), 0));
        assertTrue(dbg.waitBreak("w", 10, TimeUnit.SECONDS));
        Running d = spawn(() -> {
            n.drainBegin();
            int inflight = n.inFlight();
            n.drainEnd();
            return inflight;
        });
        Thread.sleep(50);
        assertFalse(d.isDone(0), "drain returned while a request was suspended");
        // the context thread is not blocked by the parked drain: other coroutines still run
        assertEquals(7, run(() -> 7));
        dbg.resume("w");
        w.await();
        d.await();
        assertEquals(0, d.result(0));
        assertEquals(0, w.result(0));
    }

    @Test
    void drainRecursesIntoChildren() throws Exception {
        BlockNode n = open("driver=raw,file.driver=memory,file.size=1M");
        n.drainBegin();
        assertTrue(n.file().node().isQuiesced());
        n.drainEnd();
        assertFalse(n.file().node().isQuiesced());
    }
}
