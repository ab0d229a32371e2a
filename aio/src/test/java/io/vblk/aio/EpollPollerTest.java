package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.AioContext;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** The epoll poller under a real I/O thread: fd handlers run on the context thread, cross-thread wakeups and timers end epoll_wait. */
class EpollPollerTest {
    @Test
    void eventfdHandlerRunsOnTheContextThread() throws Exception {
        AioContext ctx = IoThreads.start("epoll-test");
        EventFd efd = new EventFd();
        try {
            AtomicLong drained = new AtomicLong();
            AtomicReference<Thread> on = new AtomicReference<>();
            CountDownLatch fired = new CountDownLatch(1);
            ctx.runOnThread(() -> ctx.poller().register(efd.fd(), () -> {
                drained.addAndGet(efd.drain());
                on.set(Thread.currentThread());
                fired.countDown();
            }));
            Thread ctxThread = runOnContext(ctx);
            efd.signal();
            efd.signal();
            assertTrue(fired.await(10, TimeUnit.SECONDS), "handler ran while the loop slept in epoll_wait");
            assertSame(ctxThread, on.get());
            assertTrue(drained.get() >= 1 && drained.get() <= 2, "counter read and cleared: " + drained.get());
            ctx.runOnThread(() -> ctx.poller().unregister(efd.fd()));
        } finally {
            ctx.close();
            efd.close();
        }
    }

    /** Linux 5.11 or later (epoll_pwait2). */
    private static boolean hasEpollPwait2() {
        String[] v = System.getProperty("os.version").split("[.-]");
        int major = Integer.parseInt(v[0]), minor = Integer.parseInt(v[1]);
        return major > 5 || (major == 5 && minor >= 11);
    }

    @Test
    void subMillisecondTimeoutsAreWaitedForWithNanosecondResolution() throws Exception {
        EpollPoller p = new EpollPoller();
        try {
            long t0 = System.nanoTime();
            p.poll(300_000);                    // nothing is registered: the full timeout passes
            long waited = System.nanoTime() - t0;
            assertTrue(waited >= 300_000, "waited at least the timeout: " + waited + " ns");
            p.poll(2_000_000);                  // whole milliseconds: plain epoll_wait
            p.poll(0);
            assertEquals(hasEpollPwait2() ? 1 : 0, p.preciseWaits(), "only the 300 us wait used epoll_pwait2");
        } finally {
            p.close();
        }
    }

    /**
     * A timer whose timeout is not a whole number of milliseconds is waited for with epoll_pwait2.
     * 50.3 ms rather than a few hundred µs: the loop computes its timeout only after the wakeup
     * that delivers the timer, which can take longer than 200 µs on a loaded machine, and a timer
     * already due is not waited for at all.
     */
    @Test
    void aShortTimerUsesAPreciseWait() throws Exception {
        AioContext ctx = IoThreads.start("epoll-precise");
        try {
            Thread.sleep(20); // let the loop block in epoll_wait(-1)
            long after = timerFiresAfter(ctx, 50_300_000);
            assertTrue(after >= 50_300_000, "not before its deadline: " + after + " ns");
            long[] precise = new long[1];
            ctx.runOnThread(() -> precise[0] = ((EpollPoller) ctx.poller()).preciseWaits());
            assertTrue(!hasEpollPwait2() || precise[0] >= 1, "the loop waited for the timer with epoll_pwait2");
        } finally {
            ctx.close();
        }
    }

    /** Schedules a timer {@code delayNanos} ahead and returns how long after the call it ran (waits up to 5 s). */
    private static long timerFiresAfter(AioContext ctx, long delayNanos) throws InterruptedException {
        CountDownLatch fired = new CountDownLatch(1);
        long[] at = new long[1];
        long s = System.nanoTime(); // before the call: the deadline is computed inside it
        ctx.scheduleAfter(delayNanos, () -> {
            at[0] = System.nanoTime();
            fired.countDown();
        });
        assertTrue(fired.await(5, TimeUnit.SECONDS), "the timer fired");
        return at[0] - s;
    }

    private static Thread runOnContext(AioContext ctx) {
        Thread[] t = new Thread[1];
        ctx.runOnThread(() -> t[0] = Thread.currentThread());
        return t[0];
    }

    @Test
    void tasksFromOtherThreadsAndTimersWakeTheLoop() throws Exception {
        AioContext ctx = IoThreads.start("epoll-wake");
        try {
            Thread.sleep(50); // let the loop block in epoll_wait(-1)
            CountDownLatch ran = new CountDownLatch(1);
            long t0 = System.nanoTime();
            ctx.execute(ran::countDown);
            assertTrue(ran.await(5, TimeUnit.SECONDS), "execute() woke epoll_wait");
            long after = timerFiresAfter(ctx, 20_000_000);
            assertTrue(after >= 19_000_000, "timer not early: " + after);
            assertTrue(System.nanoTime() - t0 < 5_000_000_000L);
            assertEquals(true, ctx.poller().supportsFds());
        } finally {
            ctx.close();
        }
    }
}
