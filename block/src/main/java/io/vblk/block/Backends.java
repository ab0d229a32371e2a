package io.vblk.block;

import java.util.concurrent.Semaphore;

/** Picks the coroutine backend: Continuation when {@code jdk.internal.vm} is exported to us, else threads. */
final class Backends {
    private Backends() {}

    static final boolean CONTINUATIONS = detect();

    private static boolean detect() {
        if (Boolean.getBoolean("vblk.coroutine.threads")) {
            return false;
        }
        try {
            Module base = Object.class.getModule();
            if (!base.isExported("jdk.internal.vm", Backends.class.getModule())) {
                return false;
            }
            Class.forName("io.vblk.block.ContinuationBackend").getDeclaredConstructor(Coroutine.class);
            return true;
        } catch (ReflectiveOperationException | LinkageError e) {
            return false;
        }
    }

    /** Human name of the backend in use, for logs and bench output. */
    static String name() {
        return CONTINUATIONS ? "continuation" : "thread";
    }

    static Coroutine.Backend create(Coroutine co) {
        return CONTINUATIONS ? new ContinuationBackend(co) : new ThreadBackend(co);
    }

    static Coroutine current() {
        Thread t = Thread.currentThread();
        if (t instanceof IoThread io) {
            return io.currentCoroutine;
        }
        if (t instanceof ThreadBackend.CoThread ct) {
            return ct.current;
        }
        return null;
    }

    static void setCurrent(Coroutine co) {
        Thread t = Thread.currentThread();
        if (t instanceof IoThread io) {
            io.currentCoroutine = co;
        } else if (t instanceof ThreadBackend.CoThread ct) {
            ct.current = co;
        }
    }

    /**
     * Fallback backend: the coroutine body runs on its own platform thread, and control passes
     * strictly back and forth, so exactly one of (context thread, coroutine thread) runs at a time.
     */
    static final class ThreadBackend implements Coroutine.Backend {
        static final class CoThread extends Thread {
            volatile Coroutine current;

            CoThread(Runnable r, String name) {
                super(r, name);
                setDaemon(true);
            }
        }

        private final Coroutine co;
        private final Semaphore toCo = new Semaphore(0);
        private final Semaphore back = new Semaphore(0);
        private CoThread thread;
        private Semaphore callerResume;

        ThreadBackend(Coroutine co) {
            this.co = co;
        }

        @Override
        public void enter() {
            Coroutine outer = Backends.current();
            if (thread == null) {
                thread = new CoThread(() -> {
                    toCo.acquireUninterruptibly();
                    co.runLoop();
                }, "vblk-co-" + co.ctx.name());
                thread.current = co;
                thread.start();
            }
            toCo.release();
            back.acquireUninterruptibly();
            Backends.setCurrent(outer);
        }

        @Override
        public void yieldToCaller() {
            back.release();
            toCo.acquireUninterruptibly();
        }
    }
}
