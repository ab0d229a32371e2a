package io.vblk.virtio.vhost;

import static io.vblk.virtio.vhost.VhostUser.*;

import io.vblk.aio.LibC;
import io.vblk.aio.Native;
import io.vblk.block.Errno;
import io.vblk.block.NativeMemory;
import io.vblk.virtio.queue.InflightTracker;
import java.util.ArrayList;
import java.util.List;

/**
 * Shared memory that records which descriptor heads are in flight, so a restarted backend can
 * resubmit them after the front-end reconnects (vhost-user INFLIGHT_SHMFD, split-ring layout).
 * The backend creates it for GET_INFLIGHT_FD (a memfd), QEMU keeps the fd across backend restarts
 * and hands it back with SET_INFLIGHT_FD. libvhost-user's vu_get_inflight_fd / vu_set_inflight_fd /
 * vu_check_queue_inflights and vu_queue_inflight_get/pre_put/post_put.
 *
 * <p>Layout per queue (aligned to 64 bytes): header {features u64, version u16, desc_num u16,
 * last_batch_head u16, used_idx u16}, then desc_num entries {inflight u8, pad[5], next u16,
 * counter u64}.
 */
public final class InflightRegion implements AutoCloseable {
    private static final LibC C = Native.LIBC;
    public static final int HEADER = 16;
    public static final int ENTRY = 16;
    public static final int ALIGN = 64;
    public static final short VERSION_1 = 1;

    private final long base;
    private final long mapLen;
    private final long mmapOffset;
    private final int numQueues;
    private final int queueSize;
    private final int fd;   // our copy (-1 once closed)

    private InflightRegion(int fd, long base, long mapLen, long mmapOffset, int numQueues, int queueSize) {
        this.fd = fd;
        this.base = base;
        this.mapLen = mapLen;
        this.mmapOffset = mmapOffset;
        this.numQueues = numQueues;
        this.queueSize = queueSize;
    }

    public static long queueRegionSize(int queueSize) {
        return (HEADER + (long) ENTRY * queueSize + ALIGN - 1) & -ALIGN;
    }

    /** GET_INFLIGHT_FD: a fresh zeroed memfd region for {@code numQueues} queues of {@code queueSize}. */
    public static InflightRegion create(int numQueues, int queueSize) throws VhostUserProtocolException {
        if (numQueues <= 0 || numQueues > 1024 || queueSize <= 0 || queueSize > MAX_QUEUE_SIZE) {
            throw new VhostUserProtocolException("bad inflight request: " + numQueues + " queues of " + queueSize);
        }
        long size = queueRegionSize(queueSize) * numQueues;
        int fd = C.memfd_create("vblk-inflight", MFD_CLOEXEC);
        if (fd < 0) throw new VhostUserProtocolException("memfd_create: " + Errno.describe(Native.errno()));
        if (C.ftruncate(fd, size) < 0) {
            int e = Native.errno();
            C.close(fd);
            throw new VhostUserProtocolException("ftruncate inflight memfd: " + Errno.describe(e));
        }
        InflightRegion r = attach(fd, size, 0, numQueues, queueSize);
        for (int q = 0; q < numQueues; q++) {
            NativeMemory.putShortLE(r.queueBase(q) + 8, VERSION_1);
            NativeMemory.putShortLE(r.queueBase(q) + 10, (short) queueSize);
        }
        return r;
    }

    /** SET_INFLIGHT_FD: maps the front-end's region; takes ownership of {@code fd}. */
    public static InflightRegion attach(int fd, long mmapSize, long mmapOffset, int numQueues, int queueSize)
            throws VhostUserProtocolException {
        if (numQueues <= 0 || numQueues > 1024 || queueSize <= 0 || queueSize > MAX_QUEUE_SIZE || mmapOffset < 0
                || mmapSize < queueRegionSize(queueSize) * numQueues || mmapOffset + mmapSize < mmapSize) {
            C.close(fd);
            throw new VhostUserProtocolException("bad inflight region: size " + mmapSize + " offset " + mmapOffset
                    + " queues " + numQueues + " queue size " + queueSize);
        }
        long len = mmapOffset + mmapSize;
        long b = GuestMemoryTable.mmapShared(fd, len);
        if (b < 0) {
            int e = (int) -b;
            C.close(fd);
            throw new VhostUserProtocolException("mmap inflight region: " + Errno.describe(e));
        }
        return new InflightRegion(fd, b, len, mmapOffset, numQueues, queueSize);
    }

    public int fd() { return fd; }
    public long mmapSize() { return mapLen - mmapOffset; }
    public int numQueues() { return numQueues; }
    public int queueSize() { return queueSize; }

    long queueBase(int q) { return base + mmapOffset + queueRegionSize(queueSize) * q; }

    /** The tracking view for queue {@code q} of ring size {@code ringSize} (≤ the region's queue size), or null if out of range. */
    public Queue queue(int q, int ringSize) {
        if (q < 0 || q >= numQueues || ringSize > queueSize) return null;
        return new Queue(queueBase(q), ringSize);
    }

    @Override
    public void close() {
        GuestMemoryTable.munmap(base, mapLen);
        C.close(fd);
    }

    /** Per-queue tracking used by the device on its I/O thread (the {@link InflightTracker} of its {@link io.vblk.virtio.queue.VirtQueue}). */
    public static final class Queue implements InflightTracker {
        private final long q;
        private final int size;
        private long counter;   // confined to the queue's I/O thread

        Queue(long q, int size) {
            this.q = q;
            this.size = size;
        }

        private long entry(int head) { return q + HEADER + (long) ENTRY * head; }

        @Override
        public int[] recoverHeads(int ringUsedIdx) { return recover(ringUsedIdx).heads(); }

        /** A head was popped from the avail ring (vu_queue_inflight_get). */
        @Override
        public void begin(int head) {
            long e = entry(head);
            NativeMemory.putLongLE(e + 8, ++counter);
            java.lang.invoke.VarHandle.storeStoreFence();   // the counter before the mark, so a marked entry has its order
            NativeMemory.putByte(e, (byte) 1);
        }

        /** About to publish {@code head} to the used ring (vu_queue_inflight_pre_put). */
        @Override
        public void prePut(int head) { NativeMemory.putShortLE(q + 12, (short) head); }

        /** {@code head} is in the used ring whose idx is now {@code usedIdx} (vu_queue_inflight_post_put). */
        @Override
        public void postPut(int head, int usedIdx) {
            NativeMemory.putByte(entry(head), (byte) 0);
            java.lang.invoke.VarHandle.storeStoreFence();
            NativeMemory.putShortLE(q + 14, (short) usedIdx);
        }

        /** What a restarted backend must resubmit, in submission order, and where to continue in the avail ring. */
        public record Recovery(int[] heads, int lastAvailIdx) {}

        /**
         * Repairs the last batch against the ring's real used index and lists the heads still in
         * flight, oldest first (vu_check_queue_inflights). Call once when the queue starts.
         */
        public Recovery recover(int ringUsedIdx) {
            if (NativeMemory.getShortLE(q + 8) == 0) {   // never used: initialise
                NativeMemory.fill(q, HEADER + (long) ENTRY * size, (byte) 0);
                NativeMemory.putShortLE(q + 8, VERSION_1);
                NativeMemory.putShortLE(q + 10, (short) size);
                NativeMemory.putShortLE(q + 14, (short) ringUsedIdx);
                counter = 0;
                return new Recovery(new int[0], ringUsedIdx & 0xffff);
            }
            int used = NativeMemory.getShortLE(q + 14) & 0xffff;
            if (used != (ringUsedIdx & 0xffff)) {
                int last = NativeMemory.getShortLE(q + 12) & 0xffff;
                if (last < size) NativeMemory.putByte(entry(last), (byte) 0);
                NativeMemory.putShortLE(q + 14, (short) ringUsedIdx);
            }
            List<long[]> live = new ArrayList<>();
            long max = 0;
            for (int h = 0; h < size; h++) {
                long e = entry(h);
                if (NativeMemory.getByte(e) == 1) {
                    long c = NativeMemory.getLongLE(e + 8);
                    live.add(new long[] {c, h});
                    max = Math.max(max, c);
                } else if (NativeMemory.getByte(e) != 0) {
                    NativeMemory.putByte(e, (byte) 0);   // garbage: not in flight
                }
            }
            live.sort((a, b) -> Long.compare(a[0], b[0]));
            counter = max;
            int[] heads = new int[live.size()];
            for (int i = 0; i < heads.length; i++) heads[i] = (int) live.get(i)[1];
            return new Recovery(heads, (ringUsedIdx + heads.length) & 0xffff);
        }
    }
}
