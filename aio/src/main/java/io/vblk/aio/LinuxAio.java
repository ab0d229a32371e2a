package io.vblk.aio;

import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.Coroutine;
import io.vblk.block.Errno;
import io.vblk.block.IoCompletion;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import io.vblk.block.PollSource;
import java.util.Arrays;
import java.util.logging.Logger;

/**
 * The Linux native AIO engine of one I/O thread: QEMU's LinuxAioState (block/linux-aio.c). One
 * kernel AIO context (io_setup), one eventfd set on every iocb (IOCB_FLAG_RESFD) and watched by the
 * context's {@link EpollPoller}, a pending FIFO, {@code inQueue}/{@code inFlight} counters and a
 * {@code blocked} flag. No locks: everything runs on the owning context's thread.
 *
 * <p>Submit ({@link #submit}, laio_co_submit): a coroutine fills a pooled {@link AioRequest},
 * queues it, and either submits at once (the queue reached {@link #maxBatch}) or defers the submit
 * to the end of the current deferred-call section, so every request queued in one virtqueue kick or
 * one loop iteration goes out in one io_submit. Then it parks until completion.
 *
 * <p>Completion: the eventfd handler reaps the ring in user space ({@link AioRing}; io_getevents
 * with a zero timeout when the ring header is not usable), maps each result (full length: 0; short
 * read: zero-filled rest, 0; short write: -ENOSPC; negative: that errno), wakes the coroutine, and
 * resubmits what EAGAIN left pending.
 *
 * <p>Steady state allocates nothing: requests, iocbs, iovec arrays, the iocb pointer array and the
 * event buffer are all pooled.
 */
public final class LinuxAio {
    private static final Logger LOG = Logger.getLogger(LinuxAio.class.getName());

    /** io_setup depth and in-flight cap (MAX_EVENTS). */
    public static final int MAX_EVENTS = 1024;
    /** Default submit threshold (the iothread's aio-max-batch, 0 meaning this). */
    public static final int DEFAULT_MAX_BATCH = 32;

    private static final int FDSYNC_UNKNOWN = 0;
    private static final int FDSYNC_YES = 1;
    private static final int FDSYNC_NO = 2;

    private final AioContext ctx;
    private final int maxEvents;
    private final int aioMaxBatch;
    private final long ctxId;
    private final AioRing ring;
    private final EventFd eventFd;
    private final NativeBuffer iocbPtrs;
    private final NativeBuffer events;
    private final NativeBuffer zeroTimeout;
    private final AioStats stats = new AioStats();
    private final Runnable submitFn = this::deferredSubmit;

    // all fields below: context thread only
    private AioRequest[] byId = new AioRequest[64];
    private boolean[] inFlightById = new boolean[64];
    private int created;
    private AioRequest free;
    private AioRequest pendingHead;
    private AioRequest pendingTail;
    private int inQueue;
    private int inFlight;
    private boolean blocked;
    private int plugged;
    private int fdsync = FDSYNC_UNKNOWN;
    private boolean reapAfterSubmit = true;
    private boolean userSpaceReap = true;
    private boolean closed;
    private long reapedAt; // System.nanoTime() of the first reap since the last io_submit that found completions, 0 if none

    /** The engine of {@code ctx}, created on first use with the defaults (aio_get_linux_aio). Context thread. */
    public static LinuxAio of(AioContext ctx) {
        return ctx.attachment(LinuxAio.class, LinuxAio::new);
    }

    /** An engine with the defaults; for {@link AioContext#attachment}. Throws {@link IllegalStateException} when setup fails. */
    public LinuxAio(AioContext ctx) {
        this(ctx, MAX_EVENTS, MAX_EVENTS, DEFAULT_MAX_BATCH);
    }

    /**
     * An engine with explicit sizes (tests use a small {@code ioSetupDepth} with a larger
     * {@code maxEvents} to make the kernel return EAGAIN). Must run on {@code ctx}'s thread, and
     * {@code ctx}'s poller must watch fds.
     */
    public LinuxAio(AioContext ctx, int ioSetupDepth, int maxEvents, int aioMaxBatch) {
        if (!ctx.poller().supportsFds()) {
            throw new IllegalStateException("Linux AIO needs an I/O thread with an epoll poller (IoThreads.start), not " + ctx.name());
        }
        this.ctx = ctx;
        this.maxEvents = maxEvents;
        this.aioMaxBatch = aioMaxBatch <= 0 ? DEFAULT_MAX_BATCH : aioMaxBatch;
        try {
            this.eventFd = new EventFd();
        } catch (BlockException e) {
            throw new IllegalStateException(e.getMessage(), e);
        }
        NativeBuffer ctxp = NativeBuffer.allocate(8, 8);
        long r = Native.LIBC.syscall(Syscalls.IO_SETUP, ioSetupDepth, ctxp.address());
        if (r == -1) {
            int e = Native.errno();
            ctxp.close();
            eventFd.close();
            throw new IllegalStateException("io_setup(" + ioSetupDepth + "): " + Errno.describe(e)
                    + (e == Errno.EAGAIN ? " (fs.aio-max-nr reached)" : ""));
        }
        this.ctxId = NativeMemory.getLongLE(ctxp.address());
        ctxp.close();
        this.ring = new AioRing(ctxId);
        if (!ring.usable()) {
            LOG.warning("AIO ring header not usable from user space; reaping with io_getevents");
        }
        this.iocbPtrs = NativeBuffer.allocate((long) maxEvents * 8, 64);
        this.events = NativeBuffer.allocate((long) maxEvents * Iocb.EVENT_SIZE, 64);
        this.zeroTimeout = NativeBuffer.allocate(16, 16);
        ctx.poller().register(eventFd.fd(), this::onEventFd);
        ctx.addPollSource(pollSource);
        ctx.onClose(this::close);
    }

    /**
     * Busy-polling the completion ring (qemu_laio_poll_cb): while the I/O thread spins before
     * blocking, completions are reaped from the ring without waiting for the eventfd. The eventfd
     * stays signalled and is drained by the next epoll pass, which then finds nothing to reap.
     */
    private final PollSource pollSource = new PollSource() {
        @Override
        public boolean poll() {
            return inFlight > 0 && userSpaceReap && !closed && ring.usable() && ring.peek() > 0;
        }

        @Override
        public void run() {
            stats.polledReaps++;
            processCompletionsAndSubmit();
        }
    };

    public AioStats stats() {
        return stats;
    }

    public int inQueue() {
        return inQueue;
    }

    public int inFlight() {
        return inFlight;
    }

    /** True after io_submit returned EAGAIN with requests left pending; they go out from the completion path. */
    public boolean blocked() {
        return blocked;
    }

    public int maxEvents() {
        return maxEvents;
    }

    /** The ring's slot count as the kernel sized it (0 when reaping by syscall). */
    public int ringSize() {
        return ring.nr();
    }

    /** Test hook: when false, ioq_submit does not reap right after io_submit (so a full ring stays full). */
    public void setReapAfterSubmit(boolean on) {
        reapAfterSubmit = on;
    }

    /** Test hook: when false, completions are always fetched with io_getevents (the fallback path). */
    public void setUserSpaceReap(boolean on) {
        userSpaceReap = on;
    }

    /** Test hook: declares IOCB_CMD_FDSYNC (un)supported instead of probing it. */
    public void setFdsyncSupported(boolean on) {
        fdsync = on ? FDSYNC_YES : FDSYNC_NO;
    }

    /** False once the kernel refused IOCB_CMD_FDSYNC (or a test said so); callers then use fdatasync. */
    public boolean fdsyncSupported() {
        return fdsync != FDSYNC_NO;
    }

    // ------------------------------------------------------------------ plugging

    /** Starts batching (a nesting counter over a deferred-call section, laio_io_plug). */
    public void plug() {
        plugged++;
        ctx.deferBegin();
    }

    /** Ends batching; the outermost unplug submits what was queued (laio_io_unplug). */
    public void unplug() {
        if (plugged <= 0) {
            throw new IllegalStateException("unplug without plug");
        }
        plugged--;
        ctx.deferEnd();
    }

    // ------------------------------------------------------------------ submit

    /** Reads {@code bytes} at {@code offset} into {@code qiov} from {@code qiovOffset}. Coroutine on this context. */
    public int preadv(int fd, long offset, IoVector qiov, long qiovOffset, long bytes, int devMaxBatch) {
        return submit(LinuxConstants.IOCB_CMD_PREADV, fd, offset, qiov, qiovOffset, bytes, 0, devMaxBatch);
    }

    /** Writes; {@code rwFlags} may hold {@link LinuxConstants#RWF_DSYNC} for FUA. Coroutine on this context. */
    public int pwritev(int fd, long offset, IoVector qiov, long qiovOffset, long bytes, int rwFlags, int devMaxBatch) {
        return submit(LinuxConstants.IOCB_CMD_PWRITEV, fd, offset, qiov, qiovOffset, bytes, rwFlags, devMaxBatch);
    }

    /**
     * IOCB_CMD_FDSYNC. Returns -ENOTSUP when the kernel refuses the opcode (probed on first use,
     * EINVAL meaning unsupported), so the caller falls back to fdatasync on a worker thread.
     */
    public int fdsync(int fd) {
        if (fdsync == FDSYNC_NO) {
            return -Errno.ENOTSUP;
        }
        int r = submit(LinuxConstants.IOCB_CMD_FDSYNC, fd, 0, null, 0, 0, 0, 0);
        if (r == -Errno.EINVAL && fdsync == FDSYNC_UNKNOWN) {
            fdsync = FDSYNC_NO;
            LOG.fine("IOCB_CMD_FDSYNC not supported; flushing with fdatasync");
            return -Errno.ENOTSUP;
        }
        if (r == 0) {
            fdsync = FDSYNC_YES;
        }
        return r;
    }

    /**
     * Starts a read or write without a coroutine (FileDriver.startRw): {@code done} runs with the
     * result as a task on this context, never inside this call. Returns 0 when started, or a
     * negative errno when not (engine closed, vector too long), and then {@code done} never runs.
     * Context thread, inside or outside a coroutine.
     */
    public int start(boolean write, int fd, long offset, IoVector qiov, long qiovOffset, long bytes, int rwFlags,
            int devMaxBatch, IoCompletion done) {
        if (!ctx.inContext()) {
            throw new IllegalStateException("LinuxAio of " + ctx.name() + " used outside its thread");
        }
        AioRequest r = queue(write ? LinuxConstants.IOCB_CMD_PWRITEV : LinuxConstants.IOCB_CMD_PREADV, fd, offset, qiov,
                qiovOffset, bytes, write ? rwFlags : 0, devMaxBatch, null, done);
        return r != null ? 0 : closed ? -Errno.EIO : -Errno.EINVAL;
    }

    private int submit(int opcode, int fd, long offset, IoVector qiov, long qiovOffset, long bytes, int rwFlags,
            int devMaxBatch) {
        Coroutine co = Coroutine.current();
        if (co == null || co.context() != ctx) {
            throw new IllegalStateException("LinuxAio of " + ctx.name() + " used outside its coroutines");
        }
        AioRequest r = queue(opcode, fd, offset, qiov, qiovOffset, bytes, rwFlags, devMaxBatch, co, null);
        if (r == null) {
            return closed ? -Errno.EIO : -Errno.EINVAL;
        }
        // exactly one wake per request; parking at least once consumes it even if the request
        // completed inline, so no stale permit is left behind
        do {
            Coroutine.park();
        } while (r.ret == -Errno.EINPROGRESS);
        int ret = r.ret;
        release(r);
        return ret;
    }

    /**
     * Fills a pooled request for {@code co} (woken at completion) or {@code done} (called from a
     * task at completion), queues it and submits now or at the end of the deferred section.
     * Null if the engine is closed or the vector does not fit.
     */
    private AioRequest queue(int opcode, int fd, long offset, IoVector qiov, long qiovOffset, long bytes, int rwFlags,
            int devMaxBatch, Coroutine co, IoCompletion done) {
        if (closed) {
            return null;
        }
        AioRequest r = obtain();
        if (qiov != null) {
            int cnt = r.fillIov(qiov, qiovOffset, bytes);
            if (cnt < 0) {
                release(r);
                return null;
            }
            Iocb.prepVector(r.iocb, opcode, fd, r.iov, cnt, offset, rwFlags, eventFd.fd(), r.id);
        } else {
            Iocb.prepSync(r.iocb, opcode, fd, eventFd.fd(), r.id);
        }
        r.co = co;
        r.done = done;
        r.qiov = qiov;
        r.qiovOffset = qiovOffset;
        r.nbytes = bytes;
        r.isRead = opcode == LinuxConstants.IOCB_CMD_PREADV;
        r.ret = -Errno.EINPROGRESS;
        enqueue(r);
        if (!blocked) {
            if (inQueue >= maxBatch(devMaxBatch)) {
                ioqSubmit();
            } else {
                ctx.defer(submitFn);
            }
        }
        return r;
    }

    /** The submit threshold: the smallest non-zero of aio-max-batch, the device's, and the free in-flight slots. */
    int maxBatch(int devMaxBatch) {
        int b = aioMaxBatch;
        if (devMaxBatch > 0) {
            b = Math.min(b, devMaxBatch);
        }
        int room = maxEvents - inFlight;
        if (room > 0) {
            b = Math.min(b, room);
        }
        return b;
    }

    private void deferredSubmit() {
        if (!blocked && pendingHead != null) {
            ioqSubmit();
        }
    }

    private void enqueue(AioRequest r) {
        r.next = null;
        if (pendingTail == null) {
            pendingHead = r;
        } else {
            pendingTail.next = r;
        }
        pendingTail = r;
        inQueue++;
    }

    private AioRequest dequeue() {
        AioRequest r = pendingHead;
        pendingHead = r.next;
        if (pendingHead == null) {
            pendingTail = null;
        }
        r.next = null;
        inQueue--;
        return r;
    }

    /** Submits pending iocbs, never more than maxEvents in flight (ioq_submit). */
    private void ioqSubmit() {
        long ptrs = iocbPtrs.address();
        while (pendingHead != null && inFlight < maxEvents) {
            int room = maxEvents - inFlight;
            int len = 0;
            for (AioRequest p = pendingHead; p != null && len < room; p = p.next) {
                NativeMemory.putLongLE(ptrs + 8L * len, p.iocb);
                len++;
            }
            long submitAt = reapedAt != 0 ? System.nanoTime() : 0;
            long ret = Native.ret(HotSyscalls.INSTANCE.syscall(Syscalls.IO_SUBMIT, ctxId, len, ptrs));
            stats.ioSubmitCalls++;
            if (ret == -Errno.EAGAIN) {
                stats.eagain++;
                break;
            }
            if (ret < 0) {
                // fail the head request only, then try the rest
                AioRequest h = dequeue();
                stats.submitErrors++;
                finish(h, (int) ret);
                continue;
            }
            for (int i = 0; i < ret; i++) {
                AioRequest h = dequeue();
                inFlightById[h.id] = true;
            }
            if (submitAt != 0 && ret > 0) {
                long span = submitAt - reapedAt;
                reapedAt = 0;
                if (span <= AioStats.MAX_TURNAROUND_NANOS) {
                    stats.turnarounds++;
                    stats.turnaroundNanos += span;
                }
            }
            inFlight += (int) ret;
            stats.iocbsSubmitted += ret;
            if (ret < len) {
                break; // the kernel took only part: the ring is full; the completion path resubmits
            }
        }
        blocked = inQueue > 0;
        if (inFlight > 0 && reapAfterSubmit) {
            processCompletions();
        }
    }

    // ------------------------------------------------------------------ completion

    private void onEventFd() {
        stats.eventfdWakeups++;
        eventFd.drain();
        processCompletionsAndSubmit();
    }

    /** Reaps, then resubmits requests that EAGAIN or the in-flight cap left pending. */
    private void processCompletionsAndSubmit() {
        processCompletions();
        if (pendingHead != null) {
            ioqSubmit();
        }
    }

    /** Reaps every available completion: from the ring in user space, else with io_getevents. */
    private void processCompletions() {
        if (inFlight == 0 || closed) {
            return;
        }
        if (ring.usable() && userSpaceReap) {
            for (;;) {
                int n = ring.peek();
                if (n < 0) {
                    reapBySyscall();
                    return;
                }
                if (n == 0) {
                    return;
                }
                int head = ring.head();
                markReaped();
                for (int i = 0; i < n; i++) {
                    complete(ring.event(head + i));
                }
                ring.commit(n);
                stats.ringCompletions += n;
                stats.reaps++;
            }
        } else {
            reapBySyscall();
        }
    }

    private void reapBySyscall() {
        long ev = events.address();
        for (;;) {
            long n = Native.ret(HotSyscalls.INSTANCE.syscall(Syscalls.IO_GETEVENTS, ctxId, 0, maxEvents, ev, zeroTimeout.address(), 0));
            if (n == -Errno.EINTR) {
                continue;
            }
            if (n <= 0) {
                return;
            }
            markReaped();
            for (int i = 0; i < n; i++) {
                complete(ev + (long) i * Iocb.EVENT_SIZE);
            }
            stats.syscallCompletions += n;
            stats.reaps++;
            if (n < maxEvents) {
                return;
            }
        }
    }

    /** Opens a turnaround ({@link AioStats#turnarounds}) unless one is open: two clock reads per batch, not per request. */
    private void markReaped() {
        if (reapedAt == 0) {
            reapedAt = System.nanoTime();
        }
    }

    /** Handles one io_event (qemu_laio_process_completion). */
    private void complete(long event) {
        long data = NativeMemory.getLongLE(event + Iocb.EVENT_DATA);
        long res = NativeMemory.getLongLE(event + Iocb.EVENT_RES);
        if (data < 0 || data >= created || !inFlightById[(int) data]) {
            LOG.warning("AIO completion for unknown request " + data + " ignored");
            return;
        }
        AioRequest r = byId[(int) data];
        inFlightById[r.id] = false;
        inFlight--;
        int ret;
        if (res == r.nbytes) {
            ret = 0;
        } else if (res >= 0) {
            if (r.isRead) {
                try {
                    r.qiov.memset(r.qiovOffset + res, (byte) 0, r.nbytes - res);
                    ret = 0;
                } catch (IndexOutOfBoundsException e) {
                    ret = -Errno.EIO; // the caller's vector was shorter than the request
                }
            } else {
                ret = -Errno.ENOSPC;
            }
        } else {
            ret = (int) Math.max(res, Integer.MIN_VALUE);
        }
        finish(r, ret);
    }

    private void finish(AioRequest r, int ret) {
        r.ret = ret;
        if (r.done != null) {
            ctx.execute(r.deliverTask); // as a coroutine's wake: a task, in the loop's deferred section
        } else {
            r.co.wake();
        }
    }

    /** Hands the result of a {@link #start}ed request to its completion; the request is free again first. */
    private void deliver(AioRequest r) {
        IoCompletion done = r.done;
        int ret = r.ret;
        release(r);
        done.done(ret);
    }

    // ------------------------------------------------------------------ pool

    private AioRequest obtain() {
        AioRequest r = free;
        if (r != null) {
            free = r.next;
            r.next = null;
            return r;
        }
        if (created == byId.length) {
            byId = Arrays.copyOf(byId, created * 2);
            inFlightById = Arrays.copyOf(inFlightById, created * 2);
        }
        r = new AioRequest(created);
        AioRequest req = r;
        r.deliverTask = () -> deliver(req);
        byId[created++] = r;
        return r;
    }

    private void release(AioRequest r) {
        r.clear();
        r.next = free;
        free = r;
    }

    /** Destroys the kernel context (waiting for in-flight I/O) and frees native memory. Context thread, at close. */
    private void close() {
        if (closed) {
            return;
        }
        closed = true;
        ctx.removePollSource(pollSource);
        ctx.poller().unregister(eventFd.fd());
        Native.LIBC.syscall(Syscalls.IO_DESTROY, ctxId);
        eventFd.close();
        // wake whatever still waits so no coroutine hangs forever
        while (pendingHead != null) {
            finish(dequeue(), -Errno.ECANCELED);
        }
        for (int i = 0; i < created; i++) {
            if (inFlightById[i]) {
                inFlightById[i] = false;
                finish(byId[i], -Errno.ECANCELED);
            }
        }
        for (int i = 0; i < created; i++) {
            byId[i].free();
        }
        iocbPtrs.close();
        events.close();
        zeroTimeout.close();
    }

    @Override
    public String toString() {
        return "LinuxAio[" + ctx.name() + ", inQueue=" + inQueue + ", inFlight=" + inFlight + ", blocked=" + blocked + ", " + stats + "]";
    }
}
