package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Adaptive polling of an {@link AioContext}: QEMU's IOThread poll-max-ns / poll-grow / poll-shrink. */
class AioContextPollTest {

    /** A source whose work only polling can see: another thread sets a flag and wakes nobody. */
    private static final class FlagSource implements PollSource {
        final AtomicBoolean flag = new AtomicBoolean();
        final CountDownLatch ran = new CountDownLatch(1);
        final AtomicInteger begins = new AtomicInteger(), ends = new AtomicInteger();

        @Override public boolean poll() { return flag.get(); }
        @Override public void run() { flag.set(false); ran.countDown(); }
        @Override public void pollBegin() { begins.incrementAndGet(); }
        @Override public void pollEnd() { ends.incrementAndGet(); }
    }

    /** Two quick events grow the window to {@code maxNs} when grow is huge (the second wait is under max). */
    private static void growWindowToMax(AioContext ctx) throws InterruptedException {
        for (int i = 0; i < 3; i++) {
            ctx.execute(() -> {});
            Thread.sleep(2);
        }
    }

    /** A poller that counts its calls, around the one that parks. */
    private static final class CountingPoller implements Poller {
        final ParkingPoller inner = new ParkingPoller();
        final AtomicInteger polls = new AtomicInteger();

        @Override public void register(int fd, Runnable onReadable) { inner.register(fd, onReadable); }
        @Override public void unregister(int fd) { inner.unregister(fd); }
        @Override public boolean supportsFds() { return false; }
        @Override public void poll(long timeoutNanos) { polls.incrementAndGet(); inner.poll(timeoutNanos); }
        @Override public void wakeup() { inner.wakeup(); }
        @Override public void close() { inner.close(); }
    }

    /**
     * A task that a deferred function queues at the end of a task section (an in-process guest,
     * kicking from the interrupt handler that the device defers to the end of its completions)
     * runs before the loop polls again: no poll between a batch's completions and the queue pass
     * they lead to.
     */
    @Test
    void aTaskQueuedAtTheEndOfATaskSectionRunsBeforeTheNextPoll() throws Exception {
        CountingPoller poller = new CountingPoller();
        try (AioContext ctx = AioContext.start("chain", poller)) {
            int[] pollsAt = new int[2];
            CountDownLatch done = new CountDownLatch(1);
            ctx.execute(() -> {
                pollsAt[0] = poller.polls.get();
                ctx.defer(() -> ctx.execute(() -> {
                    pollsAt[1] = poller.polls.get();
                    done.countDown();
                }));
            });
            assertTrue(done.await(10, TimeUnit.SECONDS));
            assertEquals(pollsAt[0], pollsAt[1], "the queued task ran in the same loop iteration, before any poll");
        }
    }

    @Test
    void windowRuleMatchesQemu() {
        long max = 32_768;
        // grows from 4 µs, doubling, capped at max
        assertEquals(4_000, AioContext.nextPollNs(0, 10_000, max, 0, 0));
        assertEquals(8_000, AioContext.nextPollNs(4_000, 10_000, max, 0, 0));
        assertEquals(max, AioContext.nextPollNs(32_000, 32_500, max, 0, 0));
        assertEquals(12_000, AioContext.nextPollNs(4_000, 10_000, max, 3, 0));
        // an event within the window keeps it
        assertEquals(16_000, AioContext.nextPollNs(16_000, 9_000, max, 0, 0));
        // a wait longer than max: shrink 0 resets, shrink 2 halves, below 4 µs becomes 0
        assertEquals(0, AioContext.nextPollNs(16_000, 1_000_000, max, 0, 0));
        assertEquals(8_000, AioContext.nextPollNs(16_000, 1_000_000, max, 0, 2));
        assertEquals(0, AioContext.nextPollNs(6_000, 1_000_000, max, 0, 2));
        // poll-max-ns=0 turns polling off
        assertEquals(0, AioContext.nextPollNs(16_000, 10, 0, 0, 0));
        // no overflow with a huge grow factor
        assertEquals(Long.MAX_VALUE / 2, AioContext.nextPollNs(Long.MAX_VALUE / 4, Long.MAX_VALUE / 3, Long.MAX_VALUE / 2, 1L << 40, 0));
    }

    @Test
    void pollingFindsWorkThatSignalsNothing() throws Exception {
        try (AioContext ctx = AioContext.start("poll")) {
            FlagSource src = new FlagSource();
            ctx.setPollParams(TimeUnit.SECONDS.toNanos(2), 1_000_000, 0);
            ctx.runOnThread(() -> ctx.addPollSource(src));
            growWindowToMax(ctx);
            assertTrue(ctx.pollNs() > 0, "the window grew: " + ctx.pollNs());
            long polled = ctx.polledEvents();
            src.flag.set(true); // no execute(), no wakeup: only the spinning loop can see this
            assertTrue(src.ran.await(5, TimeUnit.SECONDS), "the source ran while the context polled");
            long[] after = new long[1];
            ctx.runOnThread(() -> after[0] = ctx.polledEvents()); // read on the loop thread, after the spin counted it
            assertTrue(after[0] > polled, "counted as found by polling: " + polled + " -> " + after[0]);
            // begin/end stay balanced once the loop is idle again
            ctx.runOnThread(() -> assertEquals(src.begins.get(), src.ends.get()));
            assertTrue(src.begins.get() > 0);
        }
    }

    @Test
    void pollMaxNsZeroNeverPolls() throws Exception {
        try (AioContext ctx = AioContext.start("nopoll")) {
            FlagSource src = new FlagSource();
            ctx.setPollParams(0, 0, 0);
            ctx.runOnThread(() -> ctx.addPollSource(src));
            growWindowToMax(ctx);
            assertEquals(0, ctx.pollNs());
            src.flag.set(true);
            assertFalse(src.ran.await(300, TimeUnit.MILLISECONDS), "nothing polls the source when poll-max-ns is 0");
            assertEquals(0, src.begins.get());
        }
    }

    @Test
    void idleContextStopsSpinning() throws Exception {
        try (AioContext ctx = AioContext.start("idle")) {
            ctx.setPollParams(1_000_000, 0, 0); // 1 ms
            for (int i = 0; i < 20; i++) {
                ctx.execute(() -> {});
            }
            Thread.sleep(50); // a wait longer than poll-max-ns resets the window
            ctx.execute(() -> {});
            Thread.sleep(50);
            assertEquals(0, ctx.pollNs());
            long waits = ctx.blockingWaits();
            Thread.sleep(100);
            assertEquals(waits, ctx.blockingWaits(), "an idle context blocks once and stays asleep");
        }
    }

    @Test
    void removedSourceIsNotPolled() throws Exception {
        try (AioContext ctx = AioContext.start("remove")) {
            FlagSource src = new FlagSource();
            ctx.setPollParams(TimeUnit.SECONDS.toNanos(2), 1_000_000, 0);
            ctx.runOnThread(() -> {
                ctx.addPollSource(src);
                ctx.removePollSource(src);
            });
            growWindowToMax(ctx);
            src.flag.set(true);
            assertFalse(src.ran.await(300, TimeUnit.MILLISECONDS));
        }
    }

    @Test
    void negativeParametersAreRefused() {
        try (AioContext ctx = AioContext.start("bad")) {
            assertThrows(IllegalArgumentException.class, () -> ctx.setPollParams(-1, 0, 0));
        }
    }
}
