package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class CoroutineTest {
    @Test
    void spawnRunsInlineUntilFirstPark() {
        try (AioContext ctx = AioContext.start("t")) {
            List<String> log = new ArrayList<>();
            ctx.runOnThread(() -> {
                Coroutine[] me = new Coroutine[1];
                ctx.spawn(() -> {
                    log.add("a");
                    me[0] = Coroutine.current();
                    Coroutine.park();
                    log.add("c");
                });
                log.add("b");
                me[0].wake();
            });
            ctx.run(() -> 0); // let the woken coroutine finish
            assertEquals(List.of("a", "b", "c"), log);
        }
    }

    @Test
    void wakeBeforeParkIsNotLost() {
        try (AioContext ctx = AioContext.start("t")) {
            int r = ctx.run(() -> {
                Coroutine.current().wake();
                Coroutine.park(); // returns at once: permit
                return 42;
            });
            assertEquals(42, r);
        }
    }

    @Test
    void coMutexSerialisesAcrossParks() throws Exception {
        try (AioContext ctx = AioContext.start("t")) {
            CoMutex m = new CoMutex();
            int[] inside = new int[1];
            int[] maxInside = new int[1];
            int[] done = new int[1];
            ctx.runOnThread(() -> {
                for (int i = 0; i < 20; i++) {
                    ctx.spawn(() -> {
                        m.lock();
                        inside[0]++;
                        maxInside[0] = Math.max(maxInside[0], inside[0]);
                        Coroutine.yieldNow();
                        inside[0]--;
                        m.unlock();
                        done[0]++;
                    });
                }
            });
            for (int i = 0; i < 1000 && ctx.run(() -> done[0]) < 20; i++) {
                Thread.sleep(1);
            }
            assertEquals(20, ctx.run(() -> done[0]));
            assertEquals(1, maxInside[0]);
        }
    }

    @Test
    void sleepParksForTheDelay() {
        try (AioContext ctx = AioContext.start("t")) {
            long t0 = System.nanoTime();
            ctx.run(() -> {
                Coroutine.sleep(20_000_000);
                return 0;
            });
            assertTrue(System.nanoTime() - t0 >= 20_000_000);
        }
    }

    @Test
    void deferredCallsRunOnceAtOutermostSectionEnd() {
        try (AioContext ctx = AioContext.start("t")) {
            int[] calls = new int[1];
            int[] seenAfterInnerEnd = new int[1];
            Runnable fn = () -> calls[0]++;
            ctx.runOnThread(() -> {
                // the loop runs tasks inside its own section, so ours is nested
                ctx.deferBegin();
                ctx.defer(fn);
                ctx.defer(fn);
                ctx.defer(fn);
                ctx.deferEnd();
                seenAfterInnerEnd[0] = calls[0];
            });
            // the loop's section has ended once a later task has been picked up by a new batch
            int after = 0;
            for (int i = 0; i < 1000 && (after = ctx.run(() -> calls[0])) == 0; i++) {
                Thread.onSpinWait();
            }
            assertEquals(0, seenAfterInnerEnd[0], "ran before the outermost section ended");
            assertEquals(1, after, "deferred function must run exactly once");
        }
    }

    @Test
    void aFunctionMayDeferItselfAgainWhileRunning() {
        try (AioContext ctx = AioContext.start("t")) {
            int[] calls = new int[1];
            Runnable[] fn = new Runnable[1];
            fn[0] = () -> {
                if (++calls[0] < 3) {
                    ctx.defer(fn[0]);
                }
            };
            ctx.runOnThread(() -> {
                ctx.deferBegin();
                ctx.defer(fn[0]);
                ctx.deferEnd();
            });
            int after = 0;
            for (int i = 0; i < 1000 && (after = ctx.run(() -> calls[0])) < 3; i++) {
                Thread.onSpinWait();
            }
            assertEquals(3, after);
        }
    }

    @Test
    void continuationBackendIsInUseWithTheProjectFlags() {
        // surefire passes --add-exports java.base/jdk.internal.vm=ALL-UNNAMED, as ./vblk does;
        // the thread fallback is only for embedders without it (or -Dvblk.coroutine.threads=true)
        String expected = Boolean.getBoolean("vblk.coroutine.threads") ? "thread" : "continuation";
        assertEquals(expected, AioContext.coroutineBackend());
    }
}
