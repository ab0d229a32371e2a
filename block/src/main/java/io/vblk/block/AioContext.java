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

    private record Timer(long deadline, long seq, Runnable action) implements Comparable<Timer> {
        @Override
        public int compareTo(Timer o) {
            int c = Long.compare(deadline, o.deadline);
            return c != 0 ? c : Long.compare(seq, o.seq);
        }
    }

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
        long deadline = System.nanoTime() + Math.max(0, delayNanos);
        if (inContext()) {
            timers.add(new Timer(deadline, timerSeq++, action));
        } else {
            execute(() -> timers.add(new Timer(deadline, timerSeq++, action)));
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
        if (deferDepth == 0) {
            fn.run();
            return;
        }
        for (Runnable r : deferred) {
            if (r == fn) {
                return;
            }
        }
        deferred.addLast(fn);
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
        long now = System.nanoTime();
        while (!timers.isEmpty() && timers.peek().deadline <= now) {
            Runnable a = timers.poll().action;
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
        sleeping.set(timeout != 0);
        if (timeout != 0 && (!tasks.isEmpty() || !localTasks.isEmpty())) {
            timeout = 0;
        }
        deferBegin();
        try {
            poller.poll(timeout);
        } finally {
            sleeping.set(false);
            deferEnd();
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
