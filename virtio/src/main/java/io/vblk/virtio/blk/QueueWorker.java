package io.vblk.virtio.blk;

import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.Coroutine;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeMemory;
import io.vblk.block.PollSource;
import io.vblk.block.RequestFlags;
import io.vblk.virtio.queue.ChainError;
import io.vblk.virtio.queue.VirtQueue;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

import static io.vblk.virtio.VirtioSpec.*;

/**
 * The request side of one virtio-blk queue on its I/O thread: QEMU's virtio_blk_handle_vq,
 * virtio_blk_handle_request, virtio_blk_submit_multireq, virtio_blk_rw_complete,
 * virtio_blk_handle_rw_error and virtio_blk_req_complete. Everything here runs on {@link #ctx}
 * except {@link #kick()}.
 */
final class QueueWorker {
    private static final Logger LOG = Logger.getLogger(QueueWorker.class.getName());
    static final int MAX_MERGE_REQS = 32; // VIRTIO_BLK_MAX_MERGE_REQS
    private static final VarHandle I32 = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle I64 = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    final VirtioBlkDevice dev;
    final VirtQueue vq;
    final AioContext ctx;
    final BlockNode node;

    // context thread only
    private final ArrayDeque<BlkRequest> pool = new ArrayDeque<>();
    final ArrayDeque<BlkRequest> held = new ArrayDeque<>(); // stopped by werror/rerror=stop, retried on resume
    private final BlkRequest[] mrb = new BlkRequest[MAX_MERGE_REQS];
    private int mrbCount;
    private boolean mrbWrite;
    boolean started;
    int inFlight;
    private Runnable drained;
    private final Runnable notifyTask;
    private boolean notifyScheduled;      // notifyTask is deferred to the end of the current section
    private final long coalesceNs;        // VirtioBlkConfig.irqCoalesceNs (0: signal at each section's end)
    private final int coalesceMax;
    private final AioContext.Timer coalesceTimer; // ends a coalescing window; null when coalescing is off
    private final boolean directRw;       // VirtioBlkConfig.directRw
    private final long kickHoldNs;        // VirtioBlkConfig.kickHoldNs (0: notifications back on after each pass)
    private final int kickHoldDepth;      // VirtioBlkConfig.kickHoldDepth: requests in flight from which kicks are held
    private final AioContext.Timer kickHoldTimer; // ends a hold; null when holding is off
    private boolean kicksHeld;            // notifications left off after a pass because requests are in flight
    private boolean pollActive;           // between pollBegin and pollEnd: the poll loop owns the notification state
    private final Runnable processTask = this::process;
    private final AtomicBoolean kickPending = new AtomicBoolean(); // any thread

    // Statistics, written on the context thread and read racily by VirtioBlkDevice.stats(). Plain
    // fields: a volatile store costs a fence per request, and stats() reads a volatile field first.
    long kicks, requests, submissions, directSubmissions, merged, interrupts, polled, heldPasses;
    long inFlightSum; // the queue's requests in flight just after each pop, summed (with requests: the mean depth the device sees)
    // pop-to-push time of one well-formed request in LATENCY_SAMPLE, per LATENCY_IN/OUT/OTHER
    final long[] latencyNanos = new long[VirtioBlkDevice.LatencyKind.values().length], timed = new long[latencyNanos.length];
    static final int LATENCY_IN = VirtioBlkDevice.LatencyKind.READ.ordinal(), LATENCY_OUT = VirtioBlkDevice.LatencyKind.WRITE.ordinal(),
            LATENCY_OTHER = VirtioBlkDevice.LatencyKind.OTHER.ordinal();
    static final int LATENCY_SAMPLE = 16; // two clock reads per request were ~3 % of the null path's CPU

    QueueWorker(VirtioBlkDevice dev, int index, int maxSize, AioContext ctx, BlockNode node) {
        this.dev = dev;
        this.vq = new VirtQueue(index, maxSize);
        this.ctx = ctx;
        this.node = node;
        this.coalesceNs = dev.cfg.irqCoalesceNs;
        this.coalesceMax = dev.cfg.irqCoalesceMax;
        this.coalesceTimer = coalesceNs > 0 ? ctx.newTimer(this::signal) : null;
        this.kickHoldNs = dev.cfg.kickHoldNs;
        this.kickHoldDepth = dev.cfg.kickHoldDepth;
        this.directRw = dev.cfg.directRw;
        this.kickHoldTimer = kickHoldNs > 0 ? ctx.newTimer(this::endHold) : null;
        this.notifyTask = () -> {
            notifyScheduled = false;
            if (kicksHeld && (inFlight < kickHoldDepth || vq.pending() != 0)) {
                heldPasses++;
                kick(); // the driver did not kick for what it added: a pass looks, and re-arms below the depth
            }
            if (coalesceNs > 0 && inFlight > 0 && vq.unsignalled() < coalesceMax) {
                coalesceTimer.arm(coalesceNs); // more completions are coming: hold the signal
                return;
            }
            signal();
        };
        for (int i = 0; i < Math.min(maxSize, 1024); i++) {
            pool.add(new BlkRequest(this));
        }
    }

    /**
     * The queue as a {@link io.vblk.block.PollSource} of its I/O thread (QEMU's
     * virtio_queue_host_notifier_aio_poll*): while the thread spins it pops new requests without
     * waiting for a kick, and asks the driver not to kick (poll_begin/poll_end).
     */
    private final PollSource pollSource = new PollSource() {
        @Override
        public boolean poll() {
            return started && vq.pending() != 0 && dev.canProcess();
        }

        @Override
        public void run() {
            polled++;
            process();
        }

        @Override
        public void pollBegin() {
            pollActive = true;
            if (started) vq.disableNotification();
        }

        @Override
        public void pollEnd() {
            pollActive = false;
            if (started && !holdKicks()) vq.enableNotification();
        }
    };
    private boolean polling; // the poll source is registered

    /** Starts or stops popping; registers the queue as a poll source while started. Context thread. */
    void setStarted(boolean on) {
        started = on;
        if (on && !polling) {
            ctx.addPollSource(pollSource);
            polling = true;
        } else if (!on && polling) {
            ctx.removePollSource(pollSource);
            polling = false;
            pollActive = false;
            kicksHeld = false;
            vq.enableNotification();
        }
    }

    /** The driver notified this queue. Any thread; coalesced. */
    void kick() {
        if (kickPending.compareAndSet(false, true)) {
            ctx.execute(processTask);
        }
    }

    // ------------------------------------------------------------------ popping (virtio_blk_handle_vq)

    void process() {
        kickPending.set(false);
        if (!started || !dev.canProcess()) return;
        kicks++;
        // While the thread busy-polls, notifications stay off and are not toggled here (QEMU's
        // suppress_notifications test in virtio_blk_handle_vq).
        boolean toggle = !pollActive;
        ctx.deferBegin();
        try {
            outer:
            do {
                if (toggle) vq.disableNotification();
                while (true) {
                    BlkRequest r = obtain();
                    int rc = vq.pop(r.chain);
                    if (rc == VirtQueue.POP_EMPTY) {
                        pool.push(r);
                        break;
                    }
                    if (rc == VirtQueue.POP_BROKEN) {
                        pool.push(r);
                        submitMultireq();
                        dev.needsReset(vq.brokenReason());
                        break outer;
                    }
                    if (!handleRequest(r)) {
                        submitMultireq();
                        break outer;
                    }
                }
            } while (toggle && !holdKicks() && !vq.enableNotification());
            submitMultireq();
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "queue " + vq.index() + " failed", t);
            dev.needsReset("internal error: " + t);
        } finally {
            ctx.deferEnd();
        }
    }

    /**
     * Whether notifications stay off after a pass (kick holding: at least kickHoldDepth requests
     * are in flight, and their completions will look at the ring). Starts the hold's time bound
     * when it begins.
     */
    private boolean holdKicks() {
        if (kickHoldNs == 0 || inFlight < kickHoldDepth) {
            kicksHeld = false;
            return false;
        }
        if (!kicksHeld) {
            kicksHeld = true;
            kickHoldTimer.arm(kickHoldNs);
        }
        return true;
    }

    boolean kicksHeld() { return kicksHeld; }

    /** A hold reached its time bound: notifications back on, and one more look at the ring. */
    private void endHold() {
        if (!kicksHeld) return;
        kicksHeld = false;
        if (started && !pollActive && !vq.enableNotification()) kick();
    }

    private BlkRequest obtain() {
        BlkRequest r = pool.poll();
        return r != null ? r : new BlkRequest(this);
    }

    /** Parses and dispatches one chain; false if processing must stop (the device needs a reset). */
    private boolean handleRequest(BlkRequest r) {
        r.clear();
        ChainError err = r.chain.error();
        if (err != null) {
            return malformed(r, "queue " + vq.index() + " head " + r.chain.head() + ": " + err.message);
        }
        IoVector in = r.chain.readable(), out = r.chain.writable();
        if (in.size() < VIRTIO_BLK_HDR_SIZE || out.size() < 1) {
            return malformed(r, "queue " + vq.index() + " head " + r.chain.head() + ": " +
                    (in.size() < VIRTIO_BLK_HDR_SIZE ? "request header shorter than 16 bytes" : "no status byte"));
        }
        requests++;
        inFlightSum += ++inFlight;
        if (requests % LATENCY_SAMPLE == 0) r.poppedAt = System.nanoTime();
        int type;
        if (in.length(0) >= VIRTIO_BLK_HDR_SIZE) { // the header in one descriptor (Linux's layout): read in place
            long h = in.address(0);
            type = NativeMemory.getIntLE(h);
            r.sector = NativeMemory.getLongLE(h + 8);
        } else { // wherever the descriptors split it
            in.copyToArray(0, r.scratch, 0, VIRTIO_BLK_HDR_SIZE);
            type = (int) I32.get(r.scratch, 0);
            r.sector = (long) I64.get(r.scratch, 8);
        }
        type &= ~VIRTIO_BLK_T_BARRIER;
        r.type = type;
        int last = out.count() - 1;
        r.statusAddr = out.address(last) + out.length(last) - 1;
        r.dataWritable = (int) (out.size() - 1);
        switch (type) {
            case VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT -> handleReadWrite(r, type == VIRTIO_BLK_T_OUT);
            case VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES -> {
                submitMultireq(); // writes before a flush or discard reach the node first (QEMU does the same)
                ctx.spawn(r.otherTask);
            }
            case VIRTIO_BLK_T_GET_ID -> getId(r);
            default -> complete(r, VIRTIO_BLK_S_UNSUPP, 1);
        }
        return true;
    }

    private boolean malformed(BlkRequest r, String why) {
        if (dev.cfg.malformedChains == MalformedChainPolicy.DROP) {
            LOG.fine(() -> "dropping malformed chain: " + why);
            dev.droppedChains++;
            vq.push(r.chain.head(), 0);
            pool.push(r);
            scheduleNotify();
            return true;
        }
        pool.push(r);
        dev.needsReset(why);
        return false;
    }

    // ------------------------------------------------------------------ reads and writes

    private void handleReadWrite(BlkRequest r, boolean write) {
        r.isWrite = write;
        IoVector in = r.chain.readable(), out = r.chain.writable();
        if (write) {
            r.qiov.concat(in, VIRTIO_BLK_HDR_SIZE, in.size() - VIRTIO_BLK_HDR_SIZE);
        } else {
            r.qiov.concat(out, 0, out.size() - 1);
        }
        if (write && dev.readOnly) {
            complete(r, VIRTIO_BLK_S_IOERR, 1);
            return;
        }
        if (!dev.sectorRangeOk(r.sector, r.qiov.size())) {
            complete(r, VIRTIO_BLK_S_IOERR, 1);
            return;
        }
        if (!dev.cfg.requestMerging) {
            startRw(r);
            return;
        }
        if (mrbCount > 0 && (mrbCount == MAX_MERGE_REQS || mrbWrite != write)) {
            submitMultireq();
        }
        mrbWrite = write;
        mrb[mrbCount++] = r;
    }

    /**
     * Sorts the collected requests by sector and merges runs of contiguous ones within the node's
     * max_transfer and IOV limits (virtio_blk_submit_multireq), then starts one coroutine per run.
     */
    void submitMultireq() {
        int n = mrbCount;
        if (n == 0) return;
        mrbCount = 0;
        if (n == 1) {
            startRw(mrb[0]);
            mrb[0] = null;
            return;
        }
        for (int i = 1; i < n; i++) { // insertion sort: n <= 32, no allocation
            BlkRequest x = mrb[i];
            int j = i - 1;
            while (j >= 0 && mrb[j].sector > x.sector) {
                mrb[j + 1] = mrb[j];
                j--;
            }
            mrb[j + 1] = x;
        }
        long maxTransfer = dev.maxTransfer();
        int maxIov = dev.maxIov();
        int start = 0;
        long bytes = mrb[0].qiov.size();
        int niov = mrb[0].qiov.count();
        for (int i = 1; i <= n; i++) {
            boolean merge = false;
            if (i < n) {
                BlkRequest p = mrb[i];
                merge = mrb[start].sector + (bytes >> VIRTIO_BLK_SECTOR_BITS) == p.sector
                        && niov + p.qiov.count() <= maxIov
                        && bytes + p.qiov.size() <= maxTransfer;
            }
            if (merge) {
                bytes += mrb[i].qiov.size();
                niov += mrb[i].qiov.count();
                continue;
            }
            BlkRequest lead = mrb[start];
            if (i - start > 1) {
                lead.mergeQiov.reset();
                for (int k = start; k < i; k++) {
                    lead.mergeQiov.concat(mrb[k].qiov, 0, mrb[k].qiov.size());
                    if (k + 1 < i) mrb[k].mergeNext = mrb[k + 1];
                }
                lead.mergeCount = i - start;
                merged += i - start - 1;
            }
            startRw(lead);
            if (i < n) {
                start = i;
                bytes = mrb[i].qiov.size();
                niov = mrb[i].qiov.count();
            }
        }
        java.util.Arrays.fill(mrb, 0, n, null);
    }

    /**
     * Starts a (possibly merged) read or write: straight into the node when it can take it without
     * a coroutine (VirtioBlkConfig.directRw), else in a coroutine of its own.
     */
    private void startRw(BlkRequest lead) {
        submissions++;
        if (directRw) {
            IoVector v = lead.mergeCount > 1 ? lead.mergeQiov : lead.qiov;
            boolean started;
            try {
                started = node.startRw(lead.isWrite, lead.sector << VIRTIO_BLK_SECTOR_BITS, v.size(), v, 0, lead.rwDone);
            } catch (Throwable t) {
                LOG.log(Level.SEVERE, "request failed with an exception", t);
                started = false; // the coroutine path tries again, and reports what it finds
            }
            if (started) {
                directSubmissions++;
                return;
            }
        }
        ctx.spawn(lead.rwTask);
    }

    /** Coroutine body of a (possibly merged) read or write (virtio_blk_submit_multireq2 + rw_complete). */
    void runReadWrite(BlkRequest lead) {
        int ret;
        try {
            IoVector v = lead.mergeCount > 1 ? lead.mergeQiov : lead.qiov;
            long off = lead.sector << VIRTIO_BLK_SECTOR_BITS;
            ret = lead.isWrite ? node.pwritev(off, v.size(), v, 0) : node.preadv(off, v.size(), v, 0);
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "request failed with an exception", t);
            ret = -Errno.EIO;
        }
        finishReadWrite(lead, ret);
    }

    /** Completes every member of a read or write group with the result {@code ret} (virtio_blk_rw_complete). */
    void finishReadWrite(BlkRequest lead, int ret) {
        BlkRequest r = lead;
        while (r != null) {
            BlkRequest next = r.mergeNext;
            r.mergeNext = null;
            r.mergeCount = 1;
            if (ret < 0) {
                if (!handleError(r, -ret, !r.isWrite)) {
                    complete(r, VIRTIO_BLK_S_IOERR, 1);
                }
            } else {
                complete(r, VIRTIO_BLK_S_OK, r.isWrite ? 1 : r.dataWritable + 1);
            }
            r = next;
        }
    }

    /**
     * Applies rerror/werror (virtio_blk_handle_rw_error). Returns true if the request was handled
     * (ignored or held for retry); false if the caller reports IOERR.
     */
    private boolean handleError(BlkRequest r, int errno, boolean read) {
        ErrorPolicy action = (read ? dev.cfg.rerror : dev.cfg.werror).actionFor(errno);
        switch (action) {
            case IGNORE -> {
                complete(r, VIRTIO_BLK_S_OK, r.isWrite || r.type != VIRTIO_BLK_T_IN ? 1 : r.dataWritable + 1);
                return true;
            }
            case STOP -> {
                held.add(r);
                inFlight--;
                dev.pauseOnError(vq.index(), errno);
                checkDrained();
                return true;
            }
            default -> {
                dev.lastError = errno;
                return false;
            }
        }
    }

    /** Retries held requests one by one (virtio_blk_dma_restart_bh). Context thread. */
    void retryHeld() {
        BlkRequest r;
        ctx.deferBegin();
        try {
            while ((r = held.poll()) != null) {
                inFlight++;
                if (r.type == VIRTIO_BLK_T_IN || r.type == VIRTIO_BLK_T_OUT) {
                    startRw(r);
                } else {
                    ctx.spawn(r.otherTask);
                }
            }
        } finally {
            ctx.deferEnd();
        }
    }

    // ------------------------------------------------------------------ flush, discard, write zeroes, get id

    void runOther(BlkRequest r) {
        try {
            switch (r.type) {
                case VIRTIO_BLK_T_FLUSH -> {
                    int ret = node.flush();
                    if (ret < 0 && handleError(r, -ret, false)) return;
                    complete(r, ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, 1);
                }
                case VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES -> discardWriteZeroes(r);
                default -> complete(r, VIRTIO_BLK_S_UNSUPP, 1);
            }
        } catch (Throwable t) {
            LOG.log(Level.SEVERE, "request failed with an exception", t);
            complete(r, VIRTIO_BLK_S_IOERR, 1);
        }
    }

    /**
     * DISCARD and WRITE_ZEROES with up to max_*_seg segments (virtio_blk_handle_discard_write_zeroes):
     * every segment is checked before any is executed, so a bad one changes nothing.
     */
    private void discardWriteZeroes(BlkRequest r) {
        boolean wz = r.type == VIRTIO_BLK_T_WRITE_ZEROES;
        if (!dev.hasFeature(wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD)) {
            complete(r, VIRTIO_BLK_S_UNSUPP, 1);
            return;
        }
        IoVector in = r.chain.readable();
        long dataLen = in.size() - VIRTIO_BLK_HDR_SIZE;
        long nseg = dataLen / VIRTIO_BLK_SEGMENT_SIZE;
        int maxSeg = wz ? dev.cfg.maxWriteZeroesSeg : dev.cfg.maxDiscardSeg;
        if (nseg > maxSeg) {
            complete(r, VIRTIO_BLK_S_UNSUPP, 1);
            return;
        }
        if (nseg == 0 || dataLen % VIRTIO_BLK_SEGMENT_SIZE != 0) {
            complete(r, VIRTIO_BLK_S_IOERR, 1);
            return;
        }
        if (dev.readOnly) {
            complete(r, VIRTIO_BLK_S_IOERR, 1);
            return;
        }
        long maxSectors = wz ? dev.maxWriteZeroesSectors() : dev.maxDiscardSectors();
        for (int i = 0; i < nseg; i++) {
            in.copyToArray(VIRTIO_BLK_HDR_SIZE + 16L * i, r.scratch, 0, 16);
            long sector = (long) I64.get(r.scratch, 0);
            long num = Integer.toUnsignedLong((int) I32.get(r.scratch, 8));
            int flags = (int) I32.get(r.scratch, 12);
            if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0 || (!wz && flags != 0)) {
                complete(r, VIRTIO_BLK_S_UNSUPP, 1);
                return;
            }
            if (num > maxSectors || !dev.sectorRangeOk(sector, num << VIRTIO_BLK_SECTOR_BITS)) {
                complete(r, VIRTIO_BLK_S_IOERR, 1);
                return;
            }
        }
        for (int i = 0; i < nseg; i++) {
            in.copyToArray(VIRTIO_BLK_HDR_SIZE + 16L * i, r.scratch, 0, 16);
            long off = (long) I64.get(r.scratch, 0) << VIRTIO_BLK_SECTOR_BITS;
            long bytes = Integer.toUnsignedLong((int) I32.get(r.scratch, 8)) << VIRTIO_BLK_SECTOR_BITS;
            boolean unmap = ((int) I32.get(r.scratch, 12) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0;
            if (bytes == 0) continue;
            int ret = wz ? node.pwriteZeroes(off, bytes, unmap ? RequestFlags.MAY_UNMAP : 0) : node.pdiscard(off, bytes);
            if (ret < 0) {
                if (wz && handleError(r, -ret, false)) return;
                dev.lastError = -ret;
                complete(r, VIRTIO_BLK_S_IOERR, 1);
                return;
            }
        }
        complete(r, VIRTIO_BLK_S_OK, 1);
    }

    private void getId(BlkRequest r) {
        byte[] id = dev.serialBytes;
        int n = Math.min(VIRTIO_BLK_ID_BYTES, r.dataWritable);
        IoVector out = r.chain.writable();
        // the serial padded with NULs, no terminator when it is exactly 20 bytes
        for (int i = 0; i < n; i++) {
            r.scratch[0] = i < id.length ? id[i] : 0;
            out.copyFromArray(i, r.scratch, 0, 1);
        }
        complete(r, VIRTIO_BLK_S_OK, n + 1);
    }

    // ------------------------------------------------------------------ completion (virtio_blk_req_complete)

    /** Writes the status, pushes the used element and schedules one interrupt for the batch. */
    void complete(BlkRequest r, int status, int written) {
        if (r.poppedAt != 0) {
            int k = r.type == VIRTIO_BLK_T_IN ? LATENCY_IN : r.type == VIRTIO_BLK_T_OUT ? LATENCY_OUT : LATENCY_OTHER;
            latencyNanos[k] += System.nanoTime() - r.poppedAt;
            timed[k]++;
        }
        NativeMemory.putByte(r.statusAddr, (byte) status);
        vq.push(r.chain.head(), written);
        inFlight--;
        r.clear();
        pool.push(r);
        scheduleNotify();
        checkDrained();
    }

    /**
     * One interrupt decision per deferred-call section, however many requests complete in it. It
     * runs first at the section's end, before an io_submit of requests popped in the same section,
     * so the driver hears of completions without waiting for the kernel's submission work.
     */
    private void scheduleNotify() {
        if (!notifyScheduled) {
            notifyScheduled = true;
            ctx.deferFirst(notifyTask);
        }
    }

    private void signal() {
        try {
            if (vq.notifyIfNeeded()) interrupts++;
        } catch (Throwable t) {
            LOG.log(Level.WARNING, "interrupt of queue " + vq.index() + " failed", t);
        }
    }

    private void checkDrained() {
        if (inFlight == 0 && drained != null) {
            Runnable d = drained;
            drained = null;
            d.run();
        }
    }

    /** Runs {@code then} once nothing is in flight (now or at the last completion). Context thread. */
    void whenDrained(Runnable then) {
        if (inFlight == 0) {
            then.run();
        } else {
            drained = then;
        }
    }

    /** Fails held requests with IOERR (the queue is being stopped and cannot retry them). */
    void failHeld() {
        BlkRequest r;
        while ((r = held.poll()) != null) {
            inFlight++;
            complete(r, VIRTIO_BLK_S_IOERR, 1);
        }
        signal();
    }

    /** Drops held requests without answering (device reset). */
    void dropHeld() {
        BlkRequest r;
        while ((r = held.poll()) != null) {
            r.clear();
            pool.push(r);
        }
    }

    /** Used by the device when waiting from this context's own thread. */
    static void pollUntil(AioContext ctx, java.util.function.BooleanSupplier done) {
        while (!done.getAsBoolean()) {
            if (Coroutine.inCoroutine()) {
                Coroutine.yieldNow();
            } else {
                ctx.iterate(true);
            }
        }
    }
}
