package io.vblk.block;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A coroutine on an {@link AioContext}: QEMU's Coroutine. A request runs as one: the code reads top
 * to bottom and {@link #park() parks} where it waits (AIO completion, {@link CoMutex},
 * {@link CoQueue}, serialising); the I/O thread is never blocked on anything but its event wait.
 *
 * <p>A coroutine only ever runs on its home context's thread, one at a time, so state owned by one
 * context needs no lock. It starts inline: {@link AioContext#spawn} on the context thread runs the
 * body at once until its first park (qemu_coroutine_enter), which is what lets one virtqueue kick
 * become one io_submit.
 *
 * <p>Park/wake use permit semantics like {@link java.util.concurrent.locks.LockSupport}: a
 * {@link #wake()} that arrives before the matching {@link #park()} makes that park return at once,
 * and {@code wake} is safe from any thread (aio_co_wake). Callers re-check their condition after
 * park returns.
 *
 * <p>Two backends: {@code jdk.internal.vm.Continuation} (needs
 * {@code --add-exports java.base/jdk.internal.vm=ALL-UNNAMED}; about 100 ns per switch), or, when
 * that export is missing, one pooled platform thread per coroutine with a strict hand-off, so the
 * semantics are identical and only the cost differs. Never park while holding a Java monitor
 * ({@code synchronized}) or inside a native call.
 */
public final class Coroutine {
    private static final Logger LOG = Logger.getLogger(Coroutine.class.getName());

    // state values (low bits) plus a permit bit
    static final int IDLE = 0;       // in the pool, no task
    static final int RUNNING = 1;    // entered, on the context thread
    static final int PARKED = 2;     // yielded, waiting for wake
    static final int SCHEDULED = 3;  // woken, queued for re-entry on its context
    private static final int STATE_MASK = 3;
    private static final int PERMIT = 4;

    final AioContext ctx;
    private final AtomicInteger state = new AtomicInteger(IDLE); // any thread
    private final Backend backend;
    Runnable task;                 // context thread only
    private Coroutine caller;      // the coroutine that entered this one (nesting), context thread only
    final Runnable enterTask = this::enter; // pre-built so that a wake allocates nothing
    private final Runnable wakeTask = this::wake;   // likewise for yieldNow

    interface Backend {
        /** Runs (or resumes) the coroutine until it parks or its task ends. Context thread only. */
        void enter();

        /** Called from inside the coroutine: returns control to {@link #enter()}'s caller. */
        void yieldToCaller();
    }

    Coroutine(AioContext ctx) {
        this.ctx = ctx;
        this.backend = Backends.create(this);
    }

    /** The coroutine running on this thread, or null when not inside one. */
    public static Coroutine current() {
        return Backends.current();
    }

    /** True when the caller runs inside a coroutine and may park. */
    public static boolean inCoroutine() {
        return current() != null;
    }

    /** The context this coroutine belongs to. */
    public AioContext context() {
        return ctx;
    }

    /**
     * Parks the current coroutine until {@link #wake()} (qemu_coroutine_yield). Returns at once if a
     * wake already arrived since the last park.
     *
     * @throws IllegalStateException when not called from a coroutine
     */
    public static void park() {
        Coroutine co = current();
        if (co == null) {
            throw new IllegalStateException("park() outside a coroutine");
        }
        co.parkSelf();
    }

    private void parkSelf() {
        for (;;) {
            int v = state.get();
            if ((v & PERMIT) != 0) {
                if (state.compareAndSet(v, v & ~PERMIT)) {
                    return;
                }
                continue;
            }
            if (state.compareAndSet(v, PARKED)) {
                break;
            }
        }
        backend.yieldToCaller();
        // re-entered by the context: state is RUNNING again
    }

    /** Wakes the coroutine (aio_co_wake): schedules re-entry on its context, from any thread. */
    public void wake() {
        for (;;) {
            int v = state.get();
            int s = v & STATE_MASK;
            if (s == PARKED) {
                if (state.compareAndSet(v, SCHEDULED)) {
                    ctx.scheduleEnter(this);
                    return;
                }
            } else if (s == RUNNING || s == SCHEDULED) {
                if ((v & PERMIT) != 0 || state.compareAndSet(v, v | PERMIT)) {
                    return;
                }
            } else {
                return; // IDLE: finished, nothing to wake
            }
        }
    }

    /** Parks the current coroutine for about {@code nanos} nanoseconds (a timer on its context). */
    public static void sleep(long nanos) {
        Coroutine co = current();
        if (co == null) {
            throw new IllegalStateException("sleep() outside a coroutine");
        }
        boolean[] fired = new boolean[1];
        co.ctx.scheduleAfter(nanos, () -> {
            fired[0] = true;
            co.wake();
        });
        while (!fired[0]) {
            park();
        }
    }

    /** Yields to other ready work on the context and comes back (aio_co_reschedule_self). */
    public static void yieldNow() {
        Coroutine co = current();
        if (co == null) {
            return;
        }
        co.ctx.execute(co.wakeTask);
        park();
    }

    /** Enters the coroutine on the context thread; returns when it parks or finishes. */
    void enter() {
        Coroutine prev = Backends.current();
        caller = prev;
        int v;
        do {
            v = state.get();
        } while (!state.compareAndSet(v, RUNNING | (v & PERMIT)));
        backend.enter();
        caller = null;
        if (task == null && (state.get() & STATE_MASK) == RUNNING) {
            // finished: back to the pool
            state.set(IDLE);
            ctx.recycle(this);
        }
    }

    /** The body loop of every backend: run tasks forever, returning control after each. */
    void runLoop() {
        for (;;) {
            Runnable t = task;
            try {
                t.run();
            } catch (Throwable e) {
                LOG.log(Level.SEVERE, "uncaught exception in coroutine on " + ctx.name(), e);
            }
            task = null;
            backend.yieldToCaller();
        }
    }

    Coroutine caller() {
        return caller;
    }

    @Override
    public String toString() {
        return "Coroutine@" + Integer.toHexString(hashCode()) + "[" + ctx.name() + ", state " + (state.get() & STATE_MASK) + "]";
    }
}
