package io.vblk.aio.file;

import io.vblk.block.Coroutine;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntSupplier;

/**
 * The {@code aio=threads} path: a small pool of worker threads that run blocking syscalls for
 * coroutines (QEMU's thread-pool.c with raw_thread_pool_submit). The calling coroutine parks until
 * its worker finishes and wakes it, so the I/O thread keeps serving other requests. Outside a
 * coroutine the job simply runs on the caller's thread.
 *
 * <p>Also used by the AIO path for what the kernel AIO interface cannot do: fdatasync when
 * IOCB_CMD_FDSYNC is refused, fallocate, ioctls, and the bounce path for misaligned buffers.
 */
public final class ThreadPoolIo {
    /** Workers of the process-wide pool (QEMU's default max is 64 per context; we are small). */
    public static final int WORKERS = Math.max(4, Math.min(16, Runtime.getRuntime().availableProcessors() * 2));

    private static final ThreadPoolIo SHARED = new ThreadPoolIo(WORKERS);

    private final ExecutorService pool;

    private ThreadPoolIo(int workers) {
        AtomicInteger n = new AtomicInteger();
        pool = Executors.newFixedThreadPool(workers, r -> {
            Thread t = new Thread(r, "vblk-file-worker-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    public static ThreadPoolIo shared() {
        return SHARED;
    }

    private static final class Job implements Runnable {
        final IntSupplier work;
        final Coroutine co;
        volatile boolean done;   // written by the worker, read by the coroutine
        volatile int ret;

        Job(IntSupplier work, Coroutine co) {
            this.work = work;
            this.co = co;
        }

        @Override
        public void run() {
            int r;
            try {
                r = work.getAsInt();
            } catch (RuntimeException | Error e) {
                r = -io.vblk.block.Errno.EIO;
            }
            ret = r;
            done = true;
            co.wake();
        }
    }

    /** Runs {@code work} on a worker and returns its result (0/count or -errno), parking the current coroutine meanwhile. */
    public int run(IntSupplier work) {
        Coroutine co = Coroutine.current();
        if (co == null) {
            return work.getAsInt();
        }
        Job job = new Job(work, co);
        pool.execute(job);
        // exactly one wake per job: park at least once so it is consumed
        do {
            Coroutine.park();
        } while (!job.done);
        return job.ret;
    }
}
