package io.vblk.block;

import java.util.concurrent.locks.LockSupport;

/**
 * The generic request path: QEMU's block/io.c. Every request on a {@link BlockNode} passes here
 * before its driver sees it: bdrv_check_byte_request, in-flight counting and drain, tracked and
 * serialising requests, read-modify-write of unaligned edges, zero writes with fallback,
 * detect-zeroes, fragmentation to max_transfer, FUA emulation, write/flush generations, dirty
 * bitmaps, copy-on-read and discard. docs/block-layer.md maps each method to its QEMU function.
 *
 * <p>All request methods return 0 or a negative errno and run in a coroutine (or on a plain
 * thread when nothing below ever parks; waits then block that thread). The aligned read/write
 * fast path allocates nothing: tracked requests come from a per-thread pool and fragments are
 * expressed as (qiov, qiovOffset) pairs instead of new vectors.
 *
 * <p>Debug events of the generic path fire on the node the request is for (QEMU fires
 * BLKDBG_PWRITEV* on bs and FLUSH_TO_* on bs->file); a {@code debug} node therefore sees the
 * events of its own requests and can fail the I/O that follows each of them.
 */
final class BlockIo {
    private BlockIo() {}

    /** Largest read/write in one request (BDRV_REQUEST_MAX_BYTES: INT_MAX rounded down to a sector). */
    static final long REQUEST_MAX_BYTES = (Integer.MAX_VALUE >> 9) << 9;
    /** Largest offset or length of a node (BDRV_MAX_LENGTH: INT64_MAX aligned down to 1 GiB). */
    static final long MAX_LENGTH = Long.MAX_VALUE & ~((1L << 30) - 1);
    /** Largest bounce buffer for zero-write fallback and copy-on-read (MAX_BOUNCE_BUFFER). */
    static final int MAX_BOUNCE_BUFFER = 16 << 20;
    /** Read-only zeros that the zero-write fallback points its vector at (never written). */
    private static final int ZERO_CHUNK = 1 << 20;
    private static volatile NativeBuffer zeroBuffer;

    // ================================================================== checks

    /** bdrv_check_request: negative or overflowing ranges are EIO. */
    static int checkRequest(long offset, long bytes) {
        if (offset < 0 || bytes < 0) {
            return -Errno.EIO;
        }
        if (bytes > MAX_LENGTH || offset > MAX_LENGTH - bytes) {
            return -Errno.EIO;
        }
        return 0;
    }

    /** bdrv_check_request32 plus the qiov check of bdrv_check_qiov_request: EIO for the range, EINVAL for a short vector. */
    static int checkRequest32(long offset, long bytes, IoVector qiov, long qiovOffset) {
        int ret = checkRequest(offset, bytes);
        if (ret < 0) {
            return ret;
        }
        if (bytes > REQUEST_MAX_BYTES) {
            return -Errno.EIO;
        }
        if (qiov != null && (qiovOffset < 0 || qiovOffset > qiov.size() || bytes > qiov.size() - qiovOffset)) {
            return -Errno.EINVAL;
        }
        return 0;
    }

    /** bdrv_check_byte_request for a read: no medium, then the range. */
    static int checkRead(BlockNode bs, long offset, long bytes, IoVector qiov, long qiovOffset) {
        if (bs.isClosed()) {
            return -Errno.ENOMEDIUM;
        }
        return checkRequest32(offset, bytes, qiov, qiovOffset);
    }

    /** The write checks of bdrv_co_pwritev: no medium, read-only (EPERM), then the range. */
    static int checkWrite(BlockNode bs, long offset, long bytes, IoVector qiov, long qiovOffset) {
        if (bs.isClosed()) {
            return -Errno.ENOMEDIUM;
        }
        if (bs.readOnly) {
            return -Errno.EPERM;
        }
        return checkRequest32(offset, bytes, qiov, qiovOffset);
    }

    // ================================================================== in flight and drain

    /** bdrv_inc_in_flight plus blk_wait_while_drained: a new request waits while the node is drained. */
    static void enter(BlockNode bs) {
        bs.inFlight.incrementAndGet();
        if (bs.quiesceCounter.get() > 0) {
            waitWhileDrained(bs);
        }
    }

    private static void waitWhileDrained(BlockNode bs) {
        while (quiescedForCaller(bs)) {
            decInFlight(bs);
            bs.quiesceWaiters.awaitWhile(bs, BlockIo::quiescedForCaller);
            bs.inFlight.incrementAndGet();
        }
    }

    /** True if the node is drained and the caller is not the one that drained it. */
    private static boolean quiescedForCaller(BlockNode bs) {
        if (bs.quiesceCounter.get() == 0) {
            return false;
        }
        Object owner = bs.drainOwner;
        Coroutine co = Coroutine.current();
        return owner != (co != null ? co : Thread.currentThread());
    }

    /** Counts a request the block layer issues itself (FUA flush, recursion): never waits for a drain. */
    static void incInFlight(BlockNode bs) {
        bs.inFlight.incrementAndGet();
    }

    /** bdrv_dec_in_flight: the last request out wakes drainers. */
    static void decInFlight(BlockNode bs) {
        if (bs.inFlight.decrementAndGet() == 0 && bs.quiesceCounter.get() > 0) {
            bs.drainWaiters.wakeAll();
        }
    }

    private static boolean busy(BlockNode bs) {
        return bs.inFlight.get() > 0;
    }

    /**
     * bdrv_drained_begin: new requests wait from now on, then wait (parking, never spinning) until
     * every request in flight has left, then drain the children.
     */
    static void drainBegin(BlockNode bs) {
        Coroutine co = Coroutine.current();
        bs.drainOwner = co != null ? co : Thread.currentThread();
        bs.quiesceCounter.incrementAndGet();
        if (bs.inFlight.get() > 0) {
            bs.drainWaiters.awaitWhile(bs, BlockIo::busy);
        }
        for (BlockChild c : bs.children()) {
            drainBegin(c.node());
        }
    }

    /** bdrv_drained_end: children first, then let waiting requests in. */
    static void drainEnd(BlockNode bs) {
        for (BlockChild c : bs.children()) {
            drainEnd(c.node());
        }
        if (bs.quiesceCounter.decrementAndGet() == 0) {
            bs.drainOwner = null;
            bs.quiesceWaiters.wakeAll();
        }
    }

    // ================================================================== tracked requests

    /** tracked_request_begin: a pooled request object on the node's list. */
    static TrackedRequest trackedBegin(BlockNode bs, TrackedRequest.Type type, long offset, long bytes) {
        return listTracked(bs, TrackedRequest.obtain(bs, type, offset, bytes));
    }

    private static TrackedRequest listTracked(BlockNode bs, TrackedRequest req) {
        bs.reqLock.lock();
        try {
            TrackedRequest h = bs.trackedHead;
            req.next = h;
            if (h != null) {
                h.prev = req;
            }
            bs.trackedHead = req;
        } finally {
            bs.reqLock.unlock();
        }
        return req;
    }

    /** tracked_request_end: off the list, wake every request waiting for it, back to the pool. */
    static void trackedEnd(TrackedRequest req) {
        BlockNode bs = req.node;
        bs.reqLock.lock();
        try {
            if (req.serialising) {
                bs.serialisingInFlight.decrementAndGet();
            }
            if (req.prev != null) {
                req.prev.next = req.next;
            } else {
                bs.trackedHead = req.next;
            }
            if (req.next != null) {
                req.next.prev = req.prev;
            }
            TrackedRequest w = req.firstWaiter;
            req.firstWaiter = null;
            while (w != null) {
                TrackedRequest nw = w.nextWaiter;
                w.nextWaiter = null;
                w.waitingFor = null;
                wakeRequest(w);
                w = nw;
            }
        } finally {
            bs.reqLock.unlock();
        }
        TrackedRequest.recycle(req);
    }

    private static void wakeRequest(TrackedRequest w) {
        if (w.co != null) {
            w.co.wake();
        } else {
            LockSupport.unpark(w.thread);
        }
    }

    /** mark_request_serialising: the overlap range widens to {@code align} and the request becomes serialising. */
    static void markSerialising(TrackedRequest req, long align) {
        long ovStart = alignDown(req.offset, align);
        long ovEnd = alignUp(req.offset + req.bytes, align);
        BlockNode bs = req.node;
        bs.reqLock.lock();
        try {
            if (!req.serialising) {
                bs.serialisingInFlight.incrementAndGet();
                req.serialising = true;
            }
            long end = Math.max(req.overlapOffset + req.overlapBytes, ovEnd);
            req.overlapOffset = Math.min(req.overlapOffset, ovStart);
            req.overlapBytes = end - req.overlapOffset;
        } finally {
            bs.reqLock.unlock();
        }
    }

    /**
     * wait_serialising_requests: waits for every overlapping request when either side is
     * serialising. A request that already waits for someone is skipped (it waits, directly or
     * not, for us: waiting for it would deadlock). Returns true if it waited.
     */
    static boolean waitSerialising(TrackedRequest self) {
        BlockNode bs = self.node;
        if (bs.serialisingInFlight.get() == 0) {
            return false;
        }
        boolean waited = false;
        for (;;) {
            TrackedRequest blocker = null;
            bs.reqLock.lock();
            try {
                for (TrackedRequest r = bs.trackedHead; r != null; r = r.next) {
                    if (r == self || (!r.serialising && !self.serialising)) {
                        continue;
                    }
                    if (r.overlaps(self.overlapOffset, self.overlapBytes)) {
                        if (r.co != null && r.co == self.co) {
                            // a driver issued a nested overlapping request on its own node: deadlock
                            throw new IllegalStateException("reentrant serialising request " + r + " in " + self);
                        }
                        if (r.waitingFor == null) {
                            self.waitingFor = r;
                            self.nextWaiter = r.firstWaiter;
                            r.firstWaiter = self;
                            blocker = r;
                            break;
                        }
                    }
                }
            } finally {
                bs.reqLock.unlock();
            }
            if (blocker == null) {
                return waited;
            }
            waited = true;
            parkUntilReleased(self);
        }
    }

    private static void parkUntilReleased(TrackedRequest self) {
        BlockNode bs = self.node;
        for (;;) {
            if (self.co != null) {
                Coroutine.park();
            } else {
                LockSupport.park(self);
            }
            bs.reqLock.lock();
            try {
                if (self.waitingFor == null) {
                    return;
                }
            } finally {
                bs.reqLock.unlock();
            }
        }
    }

    // ================================================================== reads

    /** bdrv_co_preadv_part: checks, tracking, padding of unaligned requests, then bdrv_aligned_preadv. */
    static int preadv(BlockNode bs, long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        int ret = checkRead(bs, offset, bytes, qiov, qiovOffset);
        if (ret < 0) {
            return ret;
        }
        if (bytes == 0) {
            return 0;
        }
        if (bs.copyOnRead && !bs.readOnly) {
            flags |= RequestFlags.COPY_ON_READ;
        }
        enter(bs);
        TrackedRequest req = trackedBegin(bs, TrackedRequest.Type.READ, offset, bytes);
        try {
            long align = bs.limits.requestAlignment;
            long mask = align - 1;
            if (((offset | bytes) & mask) == 0) {
                return alignedPreadv(bs, req, offset, bytes, align, qiov, qiovOffset, flags);
            }
            return paddedPreadv(bs, req, offset, bytes, align, qiov, qiovOffset, flags);
        } finally {
            trackedEnd(req);
            decInFlight(bs);
        }
    }

    /** bdrv_pad_request for a read: the caller's vector framed by bounce space for the head and tail. */
    private static int paddedPreadv(BlockNode bs, TrackedRequest req, long offset, long bytes, long align,
                                    IoVector qiov, long qiovOffset, int flags) {
        long head = offset & (align - 1);
        long end = offset + bytes;
        long tail = (align - (end & (align - 1))) & (align - 1);
        NativeBuffer buf = req.bounce(2 * align, bs.limits.minMemAlignment);
        IoVector lq = req.localQiov;
        lq.reset();
        lq.add(buf.address(), head);
        lq.concat(qiov, qiovOffset, bytes);
        lq.add(buf.address() + align + (align - tail), tail);
        return alignedPreadv(bs, req, offset - head, head + bytes + tail, align, lq, 0, flags);
    }

    /**
     * bdrv_aligned_preadv: copy-on-read, wait for serialising requests, zero fill past the end of
     * the node, fragmentation to max_transfer.
     */
    static int alignedPreadv(BlockNode bs, TrackedRequest req, long offset, long bytes, long align,
                             IoVector qiov, long qiovOffset, int flags) {
        if ((flags & RequestFlags.COPY_ON_READ) != 0) {
            markSerialising(req, corAlignment(bs));
        }
        if ((flags & RequestFlags.NO_SERIALISING) == 0) {
            waitSerialising(req);
        }
        if ((flags & RequestFlags.COPY_ON_READ) != 0) {
            int r = CopyOnRead.readIfUnallocated(bs, req, offset, bytes, qiov, qiovOffset);
            if (r != CopyOnRead.ALLOCATED) {
                return r;
            }
        }
        long total = getLength(bs);
        if (total < 0) {
            return (int) total;
        }
        long maxBytes = alignUp(Math.max(0, total - offset), align);
        long maxTransfer = maxTransfer(bs, align);
        if (bytes <= maxBytes && bytes <= maxTransfer) {
            int ret = bs.driver.coPreadv(offset, bytes, qiov, qiovOffset, 0);
            return ret < 0 ? ret : 0;
        }
        long done = 0;
        while (done < bytes) {
            long remaining = bytes - done;
            if (maxBytes > 0) {
                long num = Math.min(remaining, Math.min(maxBytes, maxTransfer));
                int ret = bs.driver.coPreadv(offset + done, num, qiov, qiovOffset + done, 0);
                if (ret < 0) {
                    return ret;
                }
                maxBytes -= num;
                done += num;
            } else {
                qiov.memset(qiovOffset + done, (byte) 0, remaining);
                done = bytes;
            }
        }
        return 0;
    }

    static long corAlignment(BlockNode bs) {
        long c = bs.driver.clusterSize();
        long a = bs.limits.requestAlignment;
        return c > a && Long.bitCount(c) == 1 ? c : a;
    }

    // ================================================================== coroutine-free reads and writes

    /**
     * The straight path of {@link #preadv}/{@link #pwritev} without a coroutine (BlockNode.startRw):
     * the same checks, in-flight count, tracking and write bookkeeping, for requests that would
     * take no detour there (no padding, RMW, copy-on-read, waiting, fragmentation, zero detection,
     * emulated FUA or notifier). Anything else returns false with nothing changed.
     */
    static boolean startRw(BlockNode bs, boolean write, long offset, long bytes, IoVector qiov, long qiovOffset, IoCompletion done) {
        long align = bs.limits.requestAlignment;
        if (bytes == 0 || qiov == null || ((offset | bytes) & (align - 1)) != 0 || bytes > maxTransfer(bs, align)) {
            return false;
        }
        if ((write ? checkWrite(bs, offset, bytes, qiov, qiovOffset) : checkRead(bs, offset, bytes, qiov, qiovOffset)) < 0) {
            return false;
        }
        if (write ? !bs.writeCacheEnabled || bs.detectZeroes != BlockNode.DetectZeroes.OFF
                || bs.beforeWriteNotifiers.length != 0 || hasReadOnlyBitmaps(bs)
                : bs.copyOnRead && !bs.readOnly) {
            return false;
        }
        long total = bs.totalBytes; // the cached length only: no driver call here
        if (total < 0 || offset > total - bytes) {
            return false;
        }
        // the order of enter() and trackedBegin() + waitSerialising(): a drain or a serialising
        // request that starts concurrently either sees this one or is seen by it
        bs.inFlight.incrementAndGet();
        if (bs.quiesceCounter.get() > 0) {
            decInFlight(bs);
            return false;
        }
        TrackedRequest req = TrackedRequest.obtain(bs, write ? TrackedRequest.Type.WRITE : TrackedRequest.Type.READ, offset, bytes);
        req.co = null; // no coroutine runs it (a caller's coroutine may start several)
        listTracked(bs, req);
        if (bs.serialisingInFlight.get() != 0) {
            trackedEnd(req);
            decInFlight(bs);
            return false;
        }
        req.startedDone = done;
        // No blkdebug events here: a breakpoint parks, which this path cannot, and the drivers
        // that take startRw (raw, file) have no use for them. A debug node refuses startRw, so
        // its requests keep their events on the coroutine path.
        if (!bs.driver.startRw(write, offset, bytes, qiov, qiovOffset, 0, req.driverDone)) {
            trackedEnd(req);
            decInFlight(bs);
            return false;
        }
        return true;
    }

    /** The driver finished a request of {@link #startRw}: what the coroutine path does after the driver call. */
    static void finishStarted(TrackedRequest req, int ret) {
        BlockNode bs = req.node;
        IoCompletion done = req.startedDone;
        if (req.type == TrackedRequest.Type.WRITE) {
            bs.writeGen.incrementAndGet(); // as driverPwritev: a flush after this is not skipped as clean
            writeFinish(bs, TrackedRequest.Type.WRITE, req.offset, req.bytes, ret);
        }
        trackedEnd(req); // recycles req
        decInFlight(bs);
        done.done(ret < 0 ? ret : 0);
    }

    // ================================================================== writes

    /** bdrv_co_pwritev_part: checks, tracking, zero writes, RMW of unaligned edges, then bdrv_aligned_pwritev. */
    static int pwritev(BlockNode bs, long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        int ret = checkWrite(bs, offset, bytes, qiov, qiovOffset);
        if (ret < 0) {
            return ret;
        }
        if (qiov == null) {
            flags |= RequestFlags.ZERO_WRITE;
        }
        if (!bs.writeCacheEnabled) {
            flags |= RequestFlags.FUA;     // writethrough/directsync: blk_co_pwritev's FUA
        }
        if (bytes == 0 && (offset & (bs.limits.requestAlignment - 1)) != 0) {
            return 0;                      // aligning an empty request makes no sense
        }
        if ((flags & RequestFlags.NO_FALLBACK) != 0 && ((offset | bytes) & (bs.limits.requestAlignment - 1)) != 0) {
            return -Errno.ENOTSUP;         // a misaligned request cannot be made efficient
        }
        enter(bs);
        TrackedRequest req = trackedBegin(bs, TrackedRequest.Type.WRITE, offset, bytes);
        try {
            long align = bs.limits.requestAlignment;
            if ((flags & RequestFlags.ZERO_WRITE) != 0) {
                return doZeroPwritev(bs, req, offset, bytes, align, flags);
            }
            if (((offset | bytes) & (align - 1)) == 0) {
                return alignedPwritev(bs, req, offset, bytes, align, qiov, qiovOffset, flags);
            }
            return rmwPwritev(bs, req, offset, bytes, align, qiov, qiovOffset, flags);
        } finally {
            trackedEnd(req);
            decInFlight(bs);
        }
    }

    /**
     * The RMW half of bdrv_co_pwritev: read the head and tail blocks while serialising, frame the
     * caller's data with them, write the aligned whole. Inside one block, one read serves both edges.
     */
    private static int rmwPwritev(BlockNode bs, TrackedRequest req, long offset, long bytes, long align,
                                  IoVector qiov, long qiovOffset, int flags) {
        long mask = align - 1;
        long head = offset & mask;
        long end = offset + bytes;
        long tail = (align - (end & mask)) & mask;
        long alStart = offset - head;
        long alEnd = end + tail;
        boolean oneBlock = alEnd - alStart == align;
        NativeBuffer buf = req.bounce(2 * align, bs.limits.minMemAlignment);
        IoVector edge = req.edgeQiov;

        markSerialising(req, align);
        waitSerialising(req);
        if (head != 0) {
            edge.reset();
            edge.add(buf.address(), align);
            bs.event(BlkDebugEvent.PWRITEV_RMW_HEAD);
            int ret = alignedPreadv(bs, req, alStart, align, align, edge, 0, 0);
            if (ret < 0) {
                return ret;
            }
            bs.event(BlkDebugEvent.PWRITEV_RMW_AFTER_HEAD);
        }
        long tailAddr;
        if (tail != 0 && oneBlock && head != 0) {
            tailAddr = buf.address() + (end - alStart);          // the head read holds the tail too
        } else if (tail != 0) {
            boolean waited = waitSerialising(req);
            assert !waited || head == 0;
            edge.reset();
            edge.add(buf.address() + align, align);
            bs.event(BlkDebugEvent.PWRITEV_RMW_TAIL);
            int ret = alignedPreadv(bs, req, alEnd - align, align, align, edge, 0, 0);
            if (ret < 0) {
                return ret;
            }
            bs.event(BlkDebugEvent.PWRITEV_RMW_AFTER_TAIL);
            tailAddr = buf.address() + align + (align - tail);
        } else {
            tailAddr = 0;
        }
        IoVector lq = req.localQiov;
        lq.reset();
        lq.add(buf.address(), head);
        lq.concat(qiov, qiovOffset, bytes);
        lq.add(tailAddr, tail);
        return alignedPwritev(bs, req, alStart, alEnd - alStart, align, lq, 0, flags);
    }

    /**
     * bdrv_co_do_zero_pwritev: RMW of the unaligned head and tail blocks (zeroed in the bounce
     * buffer), a zero write of the aligned middle.
     */
    private static int doZeroPwritev(BlockNode bs, TrackedRequest req, long offset, long bytes, long align, int flags) {
        long mask = align - 1;
        long head = offset & mask;
        long tail = (align - ((offset + bytes) & mask)) & mask;
        int ret = 0;
        NativeBuffer buf = null;
        IoVector edge = req.edgeQiov;
        if (head != 0 || tail != 0) {
            buf = req.bounce(align, bs.limits.minMemAlignment);
            edge.reset();
            edge.add(buf.address(), align);
        }
        int edgeFlags = flags & ~(RequestFlags.ZERO_WRITE | RequestFlags.MAY_UNMAP | RequestFlags.NO_FALLBACK);
        if (head != 0) {
            long zeroBytes = Math.min(bytes, align - head);
            markSerialising(req, align);
            waitSerialising(req);
            bs.event(BlkDebugEvent.PWRITEV_RMW_HEAD);
            ret = alignedPreadv(bs, req, offset - head, align, align, edge, 0, 0);
            if (ret < 0) {
                return ret;
            }
            bs.event(BlkDebugEvent.PWRITEV_RMW_AFTER_HEAD);
            NativeMemory.fill(buf.address() + head, zeroBytes, (byte) 0);
            ret = alignedPwritev(bs, req, offset - head, align, align, edge, 0, edgeFlags);
            if (ret < 0) {
                return ret;
            }
            offset += zeroBytes;
            bytes -= zeroBytes;
        }
        if (bytes >= align) {
            long aligned = bytes & ~mask;
            ret = alignedPwritev(bs, req, offset, aligned, align, null, 0, flags);
            if (ret < 0) {
                return ret;
            }
            bytes -= aligned;
            offset += aligned;
        }
        if (bytes > 0) {
            markSerialising(req, align);
            waitSerialising(req);
            bs.event(BlkDebugEvent.PWRITEV_RMW_TAIL);
            ret = alignedPreadv(bs, req, offset, align, align, edge, 0, 0);
            if (ret < 0) {
                return ret;
            }
            bs.event(BlkDebugEvent.PWRITEV_RMW_AFTER_TAIL);
            NativeMemory.fill(buf.address(), bytes, (byte) 0);
            ret = alignedPwritev(bs, req, offset, align, align, edge, 0, edgeFlags);
        }
        return ret;
    }

    /**
     * bdrv_aligned_pwritev: read-only bitmaps, wait for serialising requests, before-write
     * notifiers, detect-zeroes, then the driver (zero write, one call, or fragments), then
     * bdrv_co_write_req_finish. {@code qiov} is null for a zero write.
     */
    static int alignedPwritev(BlockNode bs, TrackedRequest req, long offset, long bytes, long align,
                              IoVector qiov, long qiovOffset, int flags) {
        if (hasReadOnlyBitmaps(bs)) {
            return -Errno.EPERM;
        }
        waitSerialising(req);
        int ret = notifyBeforeWrite(bs, offset, bytes, flags);
        if (ret == 0 && bs.detectZeroes != BlockNode.DetectZeroes.OFF && (flags & RequestFlags.ZERO_WRITE) == 0
                && qiov != null && qiov.isZero(qiovOffset, bytes)) {
            flags |= RequestFlags.ZERO_WRITE;
            if (bs.detectZeroes == BlockNode.DetectZeroes.UNMAP) {
                flags |= RequestFlags.MAY_UNMAP;
            }
        }
        if (ret < 0) {
            // a before-write notifier vetoed the request
        } else if ((flags & RequestFlags.ZERO_WRITE) != 0) {
            bs.event(BlkDebugEvent.PWRITEV_ZERO);
            ret = doPwriteZeroes(bs, req, offset, bytes, flags);
        } else {
            long maxTransfer = maxTransfer(bs, align);
            bs.event(BlkDebugEvent.PWRITEV);
            if (bytes <= maxTransfer) {
                ret = driverPwritev(bs, offset, bytes, qiov, qiovOffset, flags);
            } else {
                boolean emulatedFua = (flags & RequestFlags.FUA) != 0
                        && (bs.driver.supportedWriteFlags() & RequestFlags.FUA) == 0;
                long done = 0;
                while (done < bytes) {
                    long num = Math.min(bytes - done, maxTransfer);
                    int localFlags = flags;
                    if (emulatedFua && num < bytes - done) {
                        localFlags &= ~RequestFlags.FUA;     // one flush, after the last fragment
                    }
                    ret = driverPwritev(bs, offset + done, num, qiov, qiovOffset + done, localFlags);
                    if (ret < 0) {
                        break;
                    }
                    done += num;
                }
            }
        }
        bs.event(BlkDebugEvent.PWRITEV_DONE);
        writeFinish(bs, TrackedRequest.Type.WRITE, offset, bytes, ret);
        return ret < 0 ? ret : 0;
    }

    /**
     * bdrv_driver_pwritev: the driver gets the flags it supports; an unsupported FUA becomes a
     * flush of this node after a successful write.
     */
    static int driverPwritev(BlockNode bs, long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        BlockDriver drv = bs.driver;
        int supported = drv.supportedWriteFlags();
        int ret = drv.coPwritev(offset, bytes, qiov, qiovOffset, flags & supported);
        // bumped here, before an emulated FUA flush, so that flush cannot be skipped as "clean"
        bs.writeGen.incrementAndGet();
        if (ret >= 0 && (flags & ~supported & RequestFlags.FUA) != 0) {
            ret = flushInternal(bs);
        }
        return ret < 0 ? ret : 0;
    }

    /**
     * bdrv_co_do_pwrite_zeroes: split to the driver's zero alignment and maximum; the driver's
     * pwrite_zeroes first, then (on -ENOTSUP and without NO_FALLBACK) writes of a zero buffer.
     * An unsupported FUA becomes one flush at the end.
     */
    static int doPwriteZeroes(BlockNode bs, TrackedRequest req, long offset, long bytes, int flags) {
        BlockDriver drv = bs.driver;
        BlockLimits bl = bs.limits;
        long alignment = Math.max(bl.pwriteZeroesAlignment, bl.requestAlignment);
        long maxWriteZeroes = Math.max(alignment, alignDownAny(BlockLimits.minNonZero(bl.maxPwriteZeroes, Integer.MAX_VALUE), alignment));
        long maxTransfer = BlockLimits.minNonZero(bl.maxTransfer, MAX_BOUNCE_BUFFER);
        int zeroFlags = drv.supportedZeroFlags();
        int writeFlags = drv.supportedWriteFlags();
        long head = offset % alignment;
        long tail = (offset + bytes) % alignment;
        boolean needFlush = false;
        int ret = 0;
        while (bytes > 0 && ret == 0) {
            long num = bytes;
            if (head != 0) {
                num = Math.min(Math.min(bytes, maxTransfer), alignment - head);
                head = (head + num) % alignment;
            } else if (tail != 0 && num > alignment) {
                num -= tail;
            }
            if (num > maxWriteZeroes) {
                num = maxWriteZeroes;
            }
            ret = drv.coPwriteZeroes(offset, num, flags & zeroFlags);
            if (ret != -Errno.ENOTSUP) {
                bs.writeGen.incrementAndGet();
                if ((flags & RequestFlags.FUA) != 0 && (zeroFlags & RequestFlags.FUA) == 0) {
                    needFlush = true;
                }
            }
            if (ret == -Errno.ENOTSUP && (flags & RequestFlags.NO_FALLBACK) == 0) {
                int wf = flags & ~(RequestFlags.ZERO_WRITE | RequestFlags.MAY_UNMAP | RequestFlags.NO_FALLBACK);
                if ((flags & RequestFlags.FUA) != 0 && (writeFlags & RequestFlags.FUA) == 0) {
                    wf &= ~RequestFlags.FUA;
                    needFlush = true;
                }
                num = Math.min(num, maxTransfer);
                IoVector zq = req.localQiov;
                zq.reset();
                addZeros(zq, num);
                ret = driverPwritev(bs, offset, num, zq, 0, wf);
            }
            if (ret > 0) {
                ret = 0;
            }
            offset += num;
            bytes -= num;
        }
        if (ret == 0 && needFlush) {
            ret = flushInternal(bs);
        }
        return ret;
    }

    /** Appends {@code bytes} of the shared read-only zero buffer, repeating it as needed. */
    private static void addZeros(IoVector v, long bytes) {
        NativeBuffer z = zeroBuffer;
        if (z == null) {
            synchronized (BlockIo.class) {
                z = zeroBuffer;
                if (z == null) {
                    z = NativeBuffer.allocate(ZERO_CHUNK, 4096);
                    zeroBuffer = z;
                }
            }
        }
        while (bytes > 0) {
            long n = Math.min(bytes, ZERO_CHUNK);
            // separate slices even though they repeat one buffer (add() merges only contiguous ones)
            v.add(z.address(), n);
            bytes -= n;
        }
    }

    /** bdrv_co_pwrite_zeroes: a write without data; MAY_UNMAP only on a node opened with discard=unmap. */
    static int pwriteZeroes(BlockNode bs, long offset, long bytes, int flags) {
        if (!bs.discardUnmap) {
            flags &= ~RequestFlags.MAY_UNMAP;
        }
        return pwritev(bs, offset, bytes, null, 0, flags | RequestFlags.ZERO_WRITE);
    }

    /** bdrv_co_write_req_finish: generation (bumped per driver call), length, dirty bitmaps, highest offset. */
    private static void writeFinish(BlockNode bs, TrackedRequest.Type type, long offset, long bytes, int ret) {
        long end = offset + bytes;
        if (ret >= 0 && type != TrackedRequest.Type.DISCARD) {
            long t = bs.totalBytes;
            if (t >= 0 && end > t) {
                synchronized (bs) {
                    if (end > bs.totalBytes) {
                        bs.totalBytes = end;
                    }
                }
            }
        }
        if (bytes > 0) {
            if (type == TrackedRequest.Type.WRITE) {
                long h = bs.wrHighestOffset.get();
                while (end > h && !bs.wrHighestOffset.compareAndSet(h, end)) {
                    h = bs.wrHighestOffset.get();
                }
            }
            DirtyBitmap[] bitmaps = bs.dirtyBitmaps;
            for (DirtyBitmap b : bitmaps) {
                b.setDirty(offset, bytes);
            }
        }
    }

    private static boolean hasReadOnlyBitmaps(BlockNode bs) {
        DirtyBitmap[] bitmaps = bs.dirtyBitmaps;
        for (DirtyBitmap b : bitmaps) {
            if (b.isReadOnly()) {
                return true;
            }
        }
        return false;
    }

    private static int notifyBeforeWrite(BlockNode bs, long offset, long bytes, int flags) {
        BlockNode.WriteNotifier[] ns = bs.beforeWriteNotifiers;
        for (BlockNode.WriteNotifier n : ns) {
            int r = n.beforeWrite(bs, offset, bytes, flags);
            if (r < 0) {
                return r;
            }
        }
        return 0;
    }

    // ================================================================== discard

    /**
     * bdrv_co_pdiscard: ignored (success) unless the node was opened with discard=unmap; split to
     * the discard alignment and maximum; -ENOTSUP and rejected unaligned pieces count as success.
     */
    static int pdiscard(BlockNode bs, long offset, long bytes) {
        if (bs.isClosed()) {
            return -Errno.ENOMEDIUM;
        }
        if (bs.readOnly) {
            return -Errno.EPERM;
        }
        int ret = checkRequest(offset, bytes);
        if (ret < 0) {
            return ret;
        }
        if (!bs.discardUnmap) {
            return 0;
        }
        if (hasReadOnlyBitmaps(bs)) {
            return -Errno.EPERM;
        }
        if (bytes == 0) {
            return 0;
        }
        BlockLimits bl = bs.limits;
        long reqAlign = bl.requestAlignment;
        long align = Math.max(bl.pdiscardAlignment, reqAlign);
        long maxPdiscard = Math.max(align, alignDownAny(BlockLimits.minNonZero(bl.maxPdiscard, MAX_LENGTH), align));
        long head = offset % align;
        long tail = (offset + bytes) % align;
        enter(bs);
        TrackedRequest req = trackedBegin(bs, TrackedRequest.Type.DISCARD, offset, bytes);
        long reqOffset = offset;
        long reqBytes = bytes;
        try {
            waitSerialising(req);
            ret = 0;
            while (bytes > 0) {
                long num = bytes;
                if (head != 0) {
                    num = Math.min(bytes, align - head);
                    if (num % reqAlign != 0) {
                        num %= reqAlign;
                    }
                    head = (head + num) % align;
                } else if (tail != 0) {
                    if (num > align) {
                        num -= tail;
                    } else if (tail % reqAlign != 0 && tail > reqAlign) {
                        tail %= reqAlign;
                        num -= tail;
                    }
                }
                if (num > maxPdiscard) {
                    num = maxPdiscard;
                }
                int r = bs.driver.coPdiscard(offset, num);
                if (r < 0 && r != -Errno.ENOTSUP) {
                    boolean unaligned = offset % align != 0 || num % align != 0;
                    if (!(r == -Errno.EINVAL && unaligned)) {
                        ret = r;
                        break;
                    }
                }
                offset += num;
                bytes -= num;
            }
            bs.writeGen.incrementAndGet();
            writeFinish(bs, TrackedRequest.Type.DISCARD, reqOffset, reqBytes, ret);
            return ret;
        } finally {
            trackedEnd(req);
            decInFlight(bs);
        }
    }

    // ================================================================== flush

    /** bdrv_co_flush as a new request: waits while the node is drained. */
    static int flush(BlockNode bs) {
        enter(bs);
        try {
            return doFlush(bs);
        } finally {
            decInFlight(bs);
        }
    }

    /** bdrv_co_flush issued by the block layer itself (FUA emulation): never waits for a drain. */
    static int flushInternal(BlockNode bs) {
        incInFlight(bs);
        try {
            return doFlush(bs);
        } finally {
            decInFlight(bs);
        }
    }

    private static boolean flushBusy(BlockNode bs) {
        return !bs.activeFlush.compareAndSet(false, true);
    }

    /**
     * bdrv_co_flush: one active flush per node, later ones queued; flush_to_os always;
     * flush_to_disk unless no-flush or nothing was written since the last successful flush;
     * then the file child; flushed_gen advances only on success.
     */
    private static int doFlush(BlockNode bs) {
        if (bs.isClosed() || bs.readOnly) {
            return 0;
        }
        long currentGen = bs.writeGen.get();
        if (!bs.activeFlush.compareAndSet(false, true)) {
            bs.flushWaiters.awaitWhile(bs, BlockIo::flushBusy);
        }
        int ret;
        try {
            ret = flushLayers(bs, currentGen);
            if (ret == 0 && bs.flushedGen < currentGen) {
                bs.flushedGen = currentGen;
            }
        } finally {
            bs.activeFlush.set(false);
            bs.flushWaiters.wakeAll();
        }
        return ret;
    }

    private static int flushLayers(BlockNode bs, long currentGen) {
        BlockDriver drv = bs.driver;
        bs.event(BlkDebugEvent.FLUSH_TO_OS);
        int ret = drv.coFlushToOs();
        if (ret < 0) {
            return ret;
        }
        if (!bs.noFlush && bs.flushedGen != currentGen) {
            bs.event(BlkDebugEvent.FLUSH_TO_DISK);
            ret = drv.hasFlushToDisk() ? drv.coFlushToDisk() : 0;
            if (ret < 0) {
                return ret;
            }
        }
        BlockChild f = bs.file();
        return f == null ? 0 : flushInternal(f.node());
    }

    // ================================================================== length, truncate, status

    /** bdrv_co_getlength: the cached length, asking the driver when unknown. */
    static long getLength(BlockNode bs) {
        long t = bs.totalBytes;
        if (t >= 0) {
            return t;
        }
        if (bs.isClosed()) {
            return -Errno.ENOMEDIUM;
        }
        t = bs.driver.getLength();
        if (t >= 0) {
            bs.totalBytes = t;
        }
        return t;
    }

    /** bdrv_co_truncate: serialising over everything from the smaller of the old and new end. */
    static int truncate(BlockNode bs, long offset, boolean exact, PreallocMode prealloc, int flags) {
        if (bs.isClosed()) {
            return -Errno.ENOMEDIUM;
        }
        if (offset < 0 || offset > MAX_LENGTH) {
            return -Errno.EINVAL;
        }
        if (bs.readOnly) {
            return -Errno.EACCES;
        }
        long old = bs.driver.getLength();
        if (old < 0) {
            return (int) old;
        }
        enter(bs);
        long from = Math.min(old, offset);
        TrackedRequest req = trackedBegin(bs, TrackedRequest.Type.TRUNCATE, from, MAX_LENGTH - from);
        try {
            markSerialising(req, 1);
            waitSerialising(req);
            int ret = bs.driver.coTruncate(offset, exact, prealloc, flags);
            bs.writeGen.incrementAndGet();
            long len = bs.driver.getLength();
            bs.totalBytes = len >= 0 ? len : -1;
            return ret < 0 ? ret : 0;
        } finally {
            trackedEnd(req);
            decInFlight(bs);
        }
    }

    static int blockStatus(BlockNode bs, boolean wantZero, long offset, long bytes, BlockStatus out) {
        if (bs.isClosed()) {
            return -Errno.ENOMEDIUM;
        }
        long len = getLength(bs);
        if (len < 0) {
            return (int) len;
        }
        if (offset < 0 || bytes < 0) {
            return -Errno.EIO;
        }
        if (offset >= len) {
            out.set(BlockStatus.EOF, 0, 0, null);
            return 0;
        }
        bytes = Math.min(bytes, len - offset);
        incInFlight(bs);
        try {
            return bs.driver.coBlockStatus(wantZero, offset, bytes, out);
        } finally {
            decInFlight(bs);
        }
    }

    // ================================================================== helpers

    /** max_transfer: MIN_NON_ZERO(bl.max_transfer, INT_MAX) aligned down to {@code align}. */
    static long maxTransfer(BlockNode bs, long align) {
        return Math.max(align, alignDown(BlockLimits.minNonZero(bs.limits.maxTransfer, Integer.MAX_VALUE), align));
    }

    static long alignDown(long x, long powerOfTwo) {
        return x & -powerOfTwo;
    }

    static long alignUp(long x, long powerOfTwo) {
        return (x + powerOfTwo - 1) & -powerOfTwo;
    }

    static long alignDownAny(long x, long a) {
        return x - x % a;
    }
}
