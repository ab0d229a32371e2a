package io.vblk.nativetests.bench;

import io.vblk.block.AioContext;
import io.vblk.block.Coroutine;
import java.util.function.IntSupplier;

/**
 * The JMH benchmarks' request driver: {@code depth} worker coroutines on one I/O thread, each
 * issuing {@code ops / depth} requests back to back, and a waiter coroutine that parks until the
 * last worker is done. {@link #run()} is one benchmark invocation.
 */
public final class FanOut {
    /** One request of worker {@code worker}, its {@code k}-th; a negative errno fails the run. */
    @FunctionalInterface
    public interface Request {
        int issue(int worker, int k);
    }

    private final AioContext ctx;
    private final Runnable[] workers;
    private final IntSupplier body;
    private int remaining;          // context thread only
    private Coroutine waiter;       // context thread only

    public FanOut(AioContext ctx, int depth, int ops, Request request) {
        this.ctx = ctx;
        this.workers = new Runnable[depth];
        int perWorker = ops / depth;
        for (int i = 0; i < depth; i++) {
            int worker = i;
            workers[i] = () -> {
                for (int k = 0; k < perWorker; k++) {
                    int r = request.issue(worker, k);
                    if (r < 0) {
                        throw new IllegalStateException("request failed: " + r);
                    }
                }
                if (--remaining == 0) {
                    waiter.wake();
                }
            };
        }
        this.body = () -> {
            waiter = Coroutine.current();
            remaining = depth;
            for (Runnable w : workers) {
                ctx.spawn(w);
            }
            while (remaining > 0) {
                Coroutine.park();
            }
            return 0;
        };
    }

    /** Runs every worker to its end on the I/O thread. */
    public int run() {
        return ctx.run(body);
    }
}
