package io.vblk.block;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import java.util.function.IntSupplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * An I/O thread and its event loop: QEMU's AioContext plus IOThread. It owns a {@link Poller}
 * (epoll over eventfds), a task queue that any thread may feed, timers, the coroutines that run on
 * it, deferred-call sections for batching, and per-context attachments such as the Linux AIO
 * engine (one per I/O thread, like aio_get_linux_aio).
 *
 * <p>Adaptive polling (QEMU's IOThread {@code poll-max-ns}, {@code poll-grow}, {@code poll-shrink}):
 * before it would block, the loop busy-polls its {@link PollSource}s and its task queue for up to
 * {@code pollNs}; the window grows while events arrive within {@code poll-max-ns} of the loop going
 * idle and shrinks when they do not, so an idle context stops spinning. While it spins, sources such
 * as virtqueues ask their peers not to notify, and other threads' {@link #execute} calls need no
 * wakeup syscall. A context starts with {@code poll-max-ns=0} (off), as QEMU's AioContext does;
 * {@code vblk serve} and {@code vblk bench} set {@link #IOTHREAD_POLL_MAX_NS}, QEMU's IOThread default.
 *
 * <p>Everything not marked "any thread" must be called on the context thread.
 */
public final class AioContext implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(AioContext.class.getName());

    private final String name;
    private final Poller poller;
    private final IoThread thread;
    private final ConcurrentLinkedQueue<Runnable> tasks = new ConcurrentLinkedQueue<>(); // any thread
    private final AtomicBoolean sleeping = new AtomicBoolean();                         // any thread
    private volatile boolean closing;
    private final CountDownLatch stopped = new CountDownLatch(1);

    // context thread only
    private final ArrayDeque<Runnable> localTasks = new ArrayDeque<>(); // tasks queued by the context thread itself
    private final ArrayDeque<Coroutine> pool = new ArrayDeque<>();
    private final PriorityQueue<Timer> timers = new PriorityQueue<>();
    private long timerSeq;
    private int deferDepth;
    private final ArrayDeque<Runnable> deferred = new ArrayDeque<>();
    private final Map<Object, Object> attachments = new IdentityHashMap<>();
    private final List<Runnable> closeHooks = new ArrayList<>();
    private PollSource[] pollSources = new PollSource[0];
    private long pollMaxNs;           // 0 (off) unless set, as QEMU's AioContext; IOThreads set 32768
    private long pollGrow;            // 0: double
    private long pollShrink;          // 0: reset to 0
    private long pollNs;              // current adaptive window
    private long polledEvents;        // statistics: work found by polling
    private long blockingWaits;       // statistics: waits in the poller

    /** QEMU's default poll-max-ns for an IOThread (a bare AioContext starts with polling off). */
    public static final long IOTHREAD_POLL_MAX_NS = 32_768;
    /** Where the window starts when it first grows (QEMU: 4 µs). */
    private static final long POLL_NS_START = 4_000;

    /**
     * A one-shot timer of this context (QEMU's QEMUTimer), reusable: it can be armed again once it
     * has fired, so a periodic user allocates nothing. Context thread only.
     */
    public final class Timer implements Comparable<Timer> {
        private final Runnable action;
        private long deadline, seq;
        private boolean armed;

        private Timer(Runnable action) { this.action = action; }

        /** True from {@link #arm} until the action has been taken off the timer list to run. */
        public boolean armed() { return armed; }

        /** Runs the action about {@code delayNanos} from now; an armed timer keeps its first deadline. */
        public void arm(long delayNanos) {
            if (armed) return;
            deadline = System.nanoTime() + Math.max(0, delayNanos);
            seq = timerSeq++;
            armed = true;
            timers.add(this);
        }

        @Override
        public int compareTo(Timer o) {
            int c = Long.compare(deadline, o.deadline);
            return c != 0 ? c : Long.compare(seq, o.seq);
        }
    }

    /** A new, unarmed timer that runs {@code action} on this context's thread when it fires. */
    public Timer newTimer(Runnable action) { return new Timer(action); }

    private AioContext(String name, Poller poller) {
        this.name = name;
        this.poller = poller;
        this.thread = new IoThread(this, this::loop);
    }

    /** Starts a new I/O thread with the given poller. */
    public static AioContext start(String name, Poller poller) {
        AioContext ctx = new AioContext(name, poller);
        ctx.thread.start();
        return ctx;
    }

    /** Starts an I/O thread that cannot watch fds (enough for memory, null and debug drivers). */
    public static AioContext start(String name) {
        return start(name, new ParkingPoller());
    }

    /** The context whose thread (or one of whose coroutines) is running the caller, or null. */
    public static AioContext current() {
        Thread t = Thread.currentThread();
        if (t instanceof IoThread io) {
            return io.ctx;
        }
        Coroutine co = Coroutine.current();
        return co == null ? null : co.ctx;
    }

    public String name() {
        return name;
    }

    public Poller poller() {
        return poller;
    }

    /** CPU time (user + system) the context thread has used, in ns; -1 if the JVM cannot tell. Any thread. */
    public long threadCpuNanos() {
        java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        return mx.isThreadCpuTimeSupported() ? mx.getThreadCpuTime(thread.threadId()) : -1;
    }

    /** Which coroutine backend this JVM uses ("continuation" or "thread"). */
    public static String coroutineBackend() {
        return Backends.name();
    }

    /** True when the caller is this context's thread or one of its coroutines. */
    public boolean inContext() {
        return current() == this;
    }

    // ---------------------------------------------------------------- tasks and coroutines

    /** Runs {@code task} on the context thread soon (a bottom half). Any thread. */
    public void execute(Runnable task) {
        if (Thread.currentThread() == thread) {
            localTasks.addLast(task); // no queue node allocated: the common case (AIO completions)
            return;
        }
        tasks.add(task);
        if (sleeping.get()) {
            poller.wakeup();
        }
    }

    /**
     * Starts {@code body} as a coroutine. On the context thread it runs at once until its first
     * park (qemu_coroutine_enter); from another thread it is scheduled. Any thread.
     */
    public void spawn(Runnable body) {
        if (inContext()) {
            Coroutine co = obtain();
            co.task = body;
            co.enter();
        } else {
            execute(() -> spawn(body));
        }
    }

    /** Queues re-entry of a woken coroutine; always deferred, so it runs after the coroutine has parked. */
    void scheduleEnter(Coroutine co) {
        execute(co.enterTask);
    }

    private Coroutine obtain() {
        Coroutine co = pool.pollFirst();
        return co != null ? co : new Coroutine(this);
    }

    void recycle(Coroutine co) {
        if (pool.size() < 256) {
            pool.addFirst(co);
        }
    }

    /** Runs {@code action} on the context thread after about {@code delayNanos}. Any thread. */
    public void scheduleAfter(long delayNanos, Runnable action) {
        Timer t = new Timer(action);
        if (inContext()) {
            t.arm(delayNanos);
        } else {
            long deadline = System.nanoTime() + Math.max(0, delayNanos);
            execute(() -> t.arm(deadline - System.nanoTime()));
        }
    }

    /**
     * Runs {@code body} in a coroutine on this context and returns its result, waiting for it.
     * Inside a coroutine of this context the body runs directly; on the context thread outside a
     * coroutine the loop is polled until the body ends (AIO_WAIT_WHILE); from any other thread the
     * caller blocks. This is the synchronous entry point for tools and tests.
     */
    public int run(IntSupplier body) {
        Coroutine co = Coroutine.current();
        if (co != null && co.ctx == this) {
            return body.getAsInt();
        }
        int[] result = new int[1];
        CountDownLatch done = new CountDownLatch(1);
        Runnable wrapped = () -> {
            try {
                result[0] = body.getAsInt();
            } catch (Throwable t) {
                LOG.log(Level.SEVERE, "exception in " + name, t);
                result[0] = -Errno.EIO;
            } finally {
                done.countDown();
            }
        };
        if (Thread.currentThread() == thread) {
            spawn(wrapped);
            while (done.getCount() > 0) {
                iterate(true);
            }
        } else {
            if (co != null) {
                throw new IllegalStateException("blocking run() on " + name + " from a coroutine of " + co.ctx.name());
            }
            spawn(wrapped);
            try {
                done.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return -Errno.EINTR;
            }
        }
        return result[0];
    }

    /** Runs {@code action} on the context thread and waits for it (not in a coroutine). Any non-context thread. */
    public void runOnThread(Runnable action) {
        if (Thread.currentThread() == thread) {
            action.run();
            return;
        }
        CountDownLatch done = new CountDownLatch(1);
        RuntimeException[] err = new RuntimeException[1];
        execute(() -> {
            try {
                action.run();
            } catch (RuntimeException e) {
                err[0] = e;
            } finally {
                done.countDown();
            }
        });
        try {
            done.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (err[0] != null) {
            throw err[0];
        }
    }

    // ---------------------------------------------------------------- deferred calls (batching)

    /** Opens a deferred-call section (defer_call_begin). Sections nest. Context thread only. */
    public void deferBegin() {
        deferDepth++;
    }

    /** Closes a section; the outermost end runs each deferred function once (defer_call_end). */
    public void deferEnd() {
        if (deferDepth <= 0) {
            throw new IllegalStateException("deferEnd without deferBegin");
        }
        if (deferDepth == 1) {
            // Run while still inside the section, so that functions deferring again (a resubmit
            // from an inline completion) queue behind and run in this same loop; taking each
            // function off the queue before running it lets it be deferred again.
            Runnable fn;
            while ((fn = deferred.pollFirst()) != null) {
                fn.run();
            }
        }
        deferDepth--;
    }

    /**
     * Runs {@code fn} at the end of the current deferred-call section, once however often it is
     * deferred before it runs (compared by identity), or at once outside a section (defer_call).
     */
    public void defer(Runnable fn) {
        defer(fn, false);
    }

    /**
     * Like {@link #defer}, but runs {@code fn} before the functions already deferred in this
     * section. For work whose latency matters more than its batching, such as a used-buffer
     * interrupt, which should not wait behind an io_submit of new requests.
     */
    public void deferFirst(Runnable fn) {
        defer(fn, true);
    }

    private void defer(Runnable fn, boolean first) {
        if (deferDepth == 0) {
            fn.run();
            return;
        }
        // ArrayDeque.contains scans its array without an iterator (equals on Runnables is identity)
        if (!deferred.contains(fn)) {
            if (first) {
                deferred.addFirst(fn);
            } else {
                deferred.addLast(fn);
            }
        }
    }

    /** True inside a deferred-call section. */
    public boolean deferring() {
        return deferDepth > 0;
    }

    // ---------------------------------------------------------------- attachments

    /** Per-context singleton, created on first use on the context thread (aio_get_linux_aio). */
    @SuppressWarnings("unchecked")
    public <T> T attachment(Object key, Function<AioContext, T> factory) {
        Object v = attachments.get(key);
        if (v == null) {
            v = factory.apply(this);
            attachments.put(key, v);
        }
        return (T) v;
    }

    /** Runs {@code hook} on the context thread when the context closes (in reverse order of adding). */
    public void onClose(Runnable hook) {
        closeHooks.add(hook);
    }

    // ---------------------------------------------------------------- adaptive polling

    /** Adds a source to busy-poll before blocking (aio_set_fd_handler with io_poll). Context thread only. */
    public void addPollSource(PollSource src) {
        PollSource[] a = java.util.Arrays.copyOf(pollSources, pollSources.length + 1);
        a[a.length - 1] = src;
        pollSources = a;
    }

    /** Removes a source added by {@link #addPollSource} (identity). Context thread only. */
    public void removePollSource(PollSource src) {
        PollSource[] a = pollSources;
        for (int i = 0; i < a.length; i++) {
            if (a[i] == src) {
                PollSource[] b = new PollSource[a.length - 1];
                System.arraycopy(a, 0, b, 0, i);
                System.arraycopy(a, i + 1, b, i, a.length - i - 1);
                pollSources = b;
                return;
            }
        }
    }

    /**
     * Sets the polling parameters (the IOThread properties poll-max-ns, poll-grow, poll-shrink;
     * grow 0 doubles the window, shrink 0 resets it to 0). Any thread.
     */
    public void setPollParams(long maxNs, long grow, long shrink) {
        if (maxNs < 0 || grow < 0 || shrink < 0) {
            throw new IllegalArgumentException("poll parameters must not be negative");
        }
        Runnable r = () -> {
            pollMaxNs = maxNs;
            pollGrow = grow;
            pollShrink = shrink;
            pollNs = Math.min(pollNs, maxNs);
        };
        if (Thread.currentThread() == thread) {
            r.run();
        } else {
            runOnThread(r);
        }
    }

    /** The current adaptive polling window in ns (racy read; for tests and statistics). */
    public long pollNs() {
        return pollNs;
    }

    /** How often polling found work, and how often the loop waited in the poller (racy reads). */
    public long polledEvents() {
        return polledEvents;
    }

    public long blockingWaits() {
        return blockingWaits;
    }

    /**
     * Busy-polls the sources and the task queue for up to {@code pollNs} (run_poll_handlers).
     * Returns true if it found work (which it ran, for sources), false when the window ran out.
     */
    private boolean busyPoll() {
        PollSource[] srcs = pollSources;
        long deadline = System.nanoTime() + pollNs;
        for (PollSource s : srcs) {
            s.pollBegin();
        }
        boolean found = false;
        try {
            for (;;) {
                if (runReadySources(srcs) || !tasks.isEmpty() || !localTasks.isEmpty()) {
                    found = true;
                    return true;
                }
                if (closing || System.nanoTime() - deadline >= 0) {
                    return false;
                }
                Thread.onSpinWait();
            }
        } finally {
            for (PollSource s : srcs) {
                s.pollEnd();
            }
            if (found) {
                polledEvents++;
            }
        }
    }

    /** Runs every source whose poll() says it has work; true if any did. */
    private boolean runReadySources(PollSource[] srcs) {
        boolean any = false;
        for (PollSource s : srcs) {
            if (s.poll()) {
                any = true;
                deferBegin();
                try {
                    s.run();
                } catch (Throwable t) {
                    LOG.log(Level.SEVERE, "poll source failed on " + name, t);
                } finally {
                    deferEnd();
                }
            }
        }
        return any;
    }

    /** Adjusts the window after a wait of {@code blockNs}. */
    private void adjustPollWindow(long blockNs) {
        pollNs = nextPollNs(pollNs, blockNs, pollMaxNs, pollGrow, pollShrink);
    }

    /**
     * QEMU's aio_poll rule for the next window: keep it when the event came within it; shrink it
     * (to 0 below 4 µs, or at once when shrink is 0) after a wait longer than {@code maxNs}; grow
     * it (from 4 µs, doubling when grow is 0, capped at {@code maxNs}) after a shorter wait.
     */
    static long nextPollNs(long pollNs, long blockNs, long maxNs, long grow, long shrink) {
        if (maxNs == 0) {
            return 0;
        }
        if (blockNs <= pollNs) {
            return pollNs;
        }
        if (blockNs > maxNs) {
            long shrunk = shrink == 0 ? 0 : pollNs / shrink;
            return shrunk < POLL_NS_START ? 0 : shrunk;
        }
        if (pollNs < maxNs) {
            long factor = grow == 0 ? 2 : grow;
            if (pollNs == 0) {
                return Math.min(POLL_NS_START, maxNs);
            }
            return pollNs > maxNs / factor ? maxNs : Math.min(pollNs * factor, maxNs);
        }
        return pollNs;
    }

    // ---------------------------------------------------------------- the loop

    private void loop() {
        try {
            while (!closing) {
                iterate(true);
            }
            // drain what is left so that close hooks see a quiet context
            for (int i = 0; i < 1000 && (!tasks.isEmpty() || !localTasks.isEmpty()); i++) {
                iterate(false);
            }
            for (int i = closeHooks.size() - 1; i >= 0; i--) {
                try {
                    closeHooks.get(i).run();
                } catch (Throwable t) {
                    LOG.log(Level.WARNING, "close hook of " + name, t);
                }
            }
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "event loop " + name + " died", t);
        } finally {
            poller.close();
            stopped.countDown();
        }
    }

    /** One loop iteration (aio_poll): run ready tasks and due timers, then wait for events if idle. */
    public void iterate(boolean blocking) {
        boolean progress = runTasks();
        if (progress && !localTasks.isEmpty()) {
            // Tasks that the section's deferred functions queued at its end (an in-process guest's
            // kick from the interrupt that the device defers to the end of its completions, which
            // becomes a queue pass) run now; tasks queued by tasks already ran in the loop above.
            // Polling first would put a system call between a batch's completions and its io_submit.
            runTasks();
        }
        long now = System.nanoTime();
        while (!timers.isEmpty() && timers.peek().deadline <= now) {
            Timer t = timers.poll();
            t.armed = false;
            Runnable a = t.action;
            deferBegin();
            try {
                a.run();
            } finally {
                deferEnd();
            }
            progress = true;
        }
        long timeout;
        if (progress || !tasks.isEmpty() || !localTasks.isEmpty() || !blocking) {
            timeout = 0;
        } else if (!timers.isEmpty()) {
            timeout = Math.max(0, timers.peek().deadline - now);
        } else {
            timeout = -1;
        }
        long waitStart = 0;
        if (timeout != 0 && pollMaxNs > 0 && !closing) {
            waitStart = System.nanoTime();
            if (pollNs > 0 && busyPoll()) {
                timeout = 0; // found work while spinning: run it without blocking
            } else if (pollSources.length > 0 && runReadySources(pollSources)) {
                timeout = 0; // the recheck after pollEnd (or the only check when the window is 0)
            } else if (!timers.isEmpty()) {
                timeout = Math.max(0, timers.peek().deadline - System.nanoTime());
            }
        }
        sleeping.set(timeout != 0);
        if (timeout != 0 && (!tasks.isEmpty() || !localTasks.isEmpty())) {
            timeout = 0;
        }
        if (timeout != 0) {
            blockingWaits++;
        }
        deferBegin();
        try {
            poller.poll(timeout);
        } finally {
            sleeping.set(false);
            deferEnd();
        }
        if (waitStart != 0) {
            adjustPollWindow(System.nanoTime() - waitStart);
        }
    }

    private boolean runTasks() {
        boolean any = false;
        deferBegin();
        try {
            Runnable r;
            int n = 0;
            while (n++ < 4096 && ((r = localTasks.pollFirst()) != null || (r = tasks.poll()) != null)) {
                any = true;
                try {
                    r.run();
                } catch (Throwable t) {
                    LOG.log(Level.SEVERE, "task failed on " + name, t);
                }
            }
        } finally {
            deferEnd();
        }
        return any;
    }

    /** Stops the loop after running what is queued, runs close hooks, and waits for the thread. */
    @Override
    public void close() {
        if (closing) {
            return;
        }
        execute(() -> closing = true);
        if (Thread.currentThread() != thread) {
            try {
                stopped.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public String toString() {
        return "AioContext[" + name + "]";
    }
}
