package io.vblk.virtio.driver;

import io.vblk.block.NativeMemory;
import io.vblk.virtio.queue.Interrupt;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

import static io.vblk.virtio.VirtioSpec.*;

/**
 * The driver side of one split virtqueue (Linux's virtqueue_add_split / virtqueue_kick_prepare /
 * virtqueue_get_buf): owns the rings in guest memory, a free list of descriptors, a header,
 * status byte and indirect table per head, and an {@link Interrupt} the device signals. Use from
 * one thread. Also offers raw access to the rings for tests that want to break the rules.
 */
public final class GuestQueue {
    public static final int MAX_SEGMENTS = 64;
    private static final MemorySegment ALL = NativeMemory.ALL;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle IDX = U16.varHandle();

    private final GuestDriver drv;
    private final int index;
    private final int size;
    private final boolean eventIdx;
    public final long descGpa, availGpa, usedGpa, hdrGpa, statusGpa, indirectGpa;
    private final long desc, avail, used, hdr, status, indirect;
    private final int[] free;      // stack of free descriptor indices
    private int nfree;
    private final int[][] chainDescs;
    private final int[] chainLen;
    private int availIdx;          // driver's shadow of avail.idx
    private int kickedAt;          // avail.idx at the last kick decision
    private int lastUsed;
    private int outstanding;
    private final Semaphore irq = new Semaphore(0);
    private long kicks, kicksSuppressed, interrupts;
    private int lastHead, lastLen;

    GuestQueue(GuestDriver drv, int index, int size, boolean eventIdx) {
        this.drv = drv;
        this.index = index;
        this.size = size;
        this.eventIdx = eventIdx;
        descGpa = drv.alloc(descTableSize(size), 16);
        availGpa = drv.alloc(availRingSize(size), 2);
        usedGpa = drv.alloc(usedRingSize(size), 4);
        hdrGpa = drv.alloc(16L * size, 16);
        statusGpa = drv.alloc(size, 1);
        indirectGpa = drv.alloc(16L * MAX_SEGMENTS * size, 16);
        desc = drv.host(descGpa, descTableSize(size));
        avail = drv.host(availGpa, availRingSize(size));
        used = drv.host(usedGpa, usedRingSize(size));
        hdr = drv.host(hdrGpa, 16L * size);
        status = drv.host(statusGpa, size);
        indirect = drv.host(indirectGpa, 16L * MAX_SEGMENTS * size);
        free = new int[size];
        chainDescs = new int[size][MAX_SEGMENTS + 4];
        chainLen = new int[size];
        resetRings();
    }

    void resetRings() {
        NativeMemory.fill(avail, availRingSize(size), (byte) 0);
        NativeMemory.fill(used, usedRingSize(size), (byte) 0);
        nfree = 0;
        for (int i = size - 1; i >= 0; i--) free[nfree++] = i;
        java.util.Arrays.fill(chainLen, 0);
        availIdx = kickedAt = lastUsed = outstanding = 0;
        irq.drainPermits();
    }

    void attach() {
        var dev = drv.device();
        dev.queue(index).setSize(size);
        dev.queue(index).setAddresses(descGpa, availGpa, usedGpa);
        if (drv.wiresInterrupts()) dev.setNotifier(index, this::onInterrupt);
    }

    private void onInterrupt() {
        interrupts++;
        irq.release();
    }

    public int index() { return index; }
    public int size() { return size; }
    public int outstanding() { return outstanding; }
    public int freeDescriptors() { return nfree; }
    public long kicks() { return kicks; }
    public long kicksSuppressed() { return kicksSuppressed; }
    public long interrupts() { return interrupts; }

    // ------------------------------------------------------------------ building requests

    /** Writes descriptor {@code i} of the table at host address {@code table}. */
    public static void putDesc(long table, int i, long addr, int len, int flags, int next) {
        long d = table + 16L * i;
        NativeMemory.putLongLE(d, addr);
        NativeMemory.putIntLE(d + 8, len);
        NativeMemory.putShortLE(d + 12, (short) flags);
        NativeMemory.putShortLE(d + 14, (short) next);
    }

    /** Host address of the descriptor table (for raw tests). */
    public long descHost() { return desc; }

    /**
     * Adds a virtio-blk request and makes it available (not yet kicked). Data segments are
     * device-readable for OUT/DISCARD/WRITE_ZEROES and device-writable otherwise. Returns the head,
     * or -1 if there are not enough free descriptors.
     */
    public int submit(int type, long sector, long[] segGpa, int[] segLen, int nseg, Layout layout) {
        if (nseg > MAX_SEGMENTS) throw new IllegalArgumentException("at most " + MAX_SEGMENTS + " segments");
        boolean devWrites = !(type == VIRTIO_BLK_T_OUT || type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES);
        int direct = switch (layout) {
            case DIRECT -> nseg + 2;
            case SPLIT_HEADER -> nseg + 3;
            case INDIRECT -> 1;
            case INDIRECT_TAIL -> 2;
        };
        if (nfree < direct) return -1;
        int head = free[nfree - 1];
        long h = hdr + 16L * head;
        NativeMemory.putIntLE(h, type);
        NativeMemory.putIntLE(h + 4, 0);
        NativeMemory.putLongLE(h + 8, sector);
        NativeMemory.putByte(status + head, (byte) 0xff);
        long hg = hdrGpa + 16L * head, sg = statusGpa + head;
        int dataFlags = devWrites ? VIRTQ_DESC_F_WRITE : 0;
        switch (layout) {
            case DIRECT, SPLIT_HEADER -> {
                int[] ids = chainDescs[head];
                for (int i = 0; i < direct; i++) ids[i] = free[--nfree];
                chainLen[head] = direct;
                int k = 0;
                if (layout == Layout.SPLIT_HEADER) {
                    putDesc(desc, ids[k], hg, 7, VIRTQ_DESC_F_NEXT, ids[k + 1]); k++;
                    putDesc(desc, ids[k], hg + 7, 9, VIRTQ_DESC_F_NEXT, ids[k + 1]); k++;
                } else {
                    putDesc(desc, ids[k], hg, 16, VIRTQ_DESC_F_NEXT, ids[k + 1]); k++;
                }
                for (int i = 0; i < nseg; i++, k++) putDesc(desc, ids[k], segGpa[i], segLen[i], dataFlags | VIRTQ_DESC_F_NEXT, ids[k + 1]);
                putDesc(desc, ids[k], sg, 1, VIRTQ_DESC_F_WRITE, 0);
            }
            case INDIRECT -> {
                chainDescs[head][0] = free[--nfree];
                chainLen[head] = 1;
                long t = indirect + 16L * MAX_SEGMENTS * head;
                long tg = indirectGpa + 16L * MAX_SEGMENTS * head;
                int k = 0;
                putDesc(t, k, hg, 16, VIRTQ_DESC_F_NEXT, k + 1); k++;
                for (int i = 0; i < nseg; i++, k++) putDesc(t, k, segGpa[i], segLen[i], dataFlags | VIRTQ_DESC_F_NEXT, k + 1);
                putDesc(t, k, sg, 1, VIRTQ_DESC_F_WRITE, 0); k++;
                putDesc(desc, head, tg, 16 * k, VIRTQ_DESC_F_INDIRECT, 0);
            }
            case INDIRECT_TAIL -> {
                int[] ids = chainDescs[head];
                ids[0] = free[--nfree];
                ids[1] = free[--nfree];
                chainLen[head] = 2;
                long t = indirect + 16L * MAX_SEGMENTS * head;
                long tg = indirectGpa + 16L * MAX_SEGMENTS * head;
                int k = 0;
                for (int i = 0; i < nseg; i++, k++) putDesc(t, k, segGpa[i], segLen[i], dataFlags | VIRTQ_DESC_F_NEXT, k + 1);
                putDesc(t, k, sg, 1, VIRTQ_DESC_F_WRITE, 0); k++;
                putDesc(desc, ids[0], hg, 16, VIRTQ_DESC_F_NEXT, ids[1]);
                putDesc(desc, ids[1], tg, 16 * k, VIRTQ_DESC_F_INDIRECT, 0);
            }
        }
        makeAvailable(head);
        return head;
    }

    /** One data buffer. */
    public int submit(int type, long sector, long dataGpa, int dataLen, Layout layout) {
        return dataLen == 0
                ? submit(type, sector, new long[0], new int[0], 0, layout)
                : submit(type, sector, new long[] {dataGpa}, new int[] {dataLen}, 1, layout);
    }

    /** Puts {@code head} in the avail ring and publishes avail.idx (release). */
    public void makeAvailable(int head) {
        NativeMemory.putShortLE(avail + 4 + 2L * (availIdx & (size - 1)), (short) head);
        availIdx = (availIdx + 1) & 0xffff;
        IDX.setRelease(ALL, avail + 2, (short) availIdx);
        outstanding++;
    }

    /** Raw: sets avail.idx to any value (fuzzing "idx runs ahead"). */
    public void setAvailIdxRaw(int idx) {
        availIdx = idx & 0xffff;
        IDX.setRelease(ALL, avail + 2, (short) availIdx);
    }

    /** Raw: writes avail.ring[slot]. */
    public void setAvailRingRaw(int slot, int head) {
        NativeMemory.putShortLE(avail + 4 + 2L * (slot & (size - 1)), (short) head);
    }

    public int availIdx() { return availIdx; }

    /** avail.flags NO_INTERRUPT on or off. */
    public void setNoInterrupt(boolean on) {
        NativeMemory.putShortLE(avail, (short) (on ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0));
    }

    /** used_event (EVENT_IDX): interrupt when used.idx passes this. */
    public void setUsedEvent(int v) {
        IDX.setRelease(ALL, avail + 4 + 2L * size, (short) v);
    }

    /**
     * Notifies the device if it wants to hear (virtqueue_kick_prepare: avail_event with EVENT_IDX,
     * else the NO_NOTIFY flag). Returns true if it kicked.
     */
    public boolean kick() {
        VarHandle.fullFence();
        int old = kickedAt;
        kickedAt = availIdx;
        boolean need;
        if (eventIdx) {
            int ev = Short.toUnsignedInt((short) IDX.getVolatile(ALL, used + 4 + 8L * size));
            need = needEvent(ev, availIdx, old);
        } else {
            need = (Short.toUnsignedInt((short) IDX.getVolatile(ALL, used)) & VIRTQ_USED_F_NO_NOTIFY) == 0;
        }
        if (need) {
            kicks++;
            drv.device().kick(index);
        } else {
            kicksSuppressed++;
        }
        return need;
    }

    /** Kicks unconditionally. */
    public void forceKick() {
        kickedAt = availIdx;
        kicks++;
        drv.device().kick(index);
    }

    // ------------------------------------------------------------------ reaping

    /** used.idx as the device published it. */
    public int usedIdx() {
        return Short.toUnsignedInt((short) IDX.getAcquire(ALL, used + 2));
    }

    /**
     * Takes the next used element if any (virtqueue_get_buf): then {@link #lastHead()},
     * {@link #lastLen()} and {@link #status(int)} describe it and its descriptors are free again.
     */
    public boolean pollUsed() {
        if (usedIdx() == lastUsed) return false;
        long e = used + 4 + 8L * (lastUsed & (size - 1));
        lastHead = NativeMemory.getIntLE(e);
        lastLen = NativeMemory.getIntLE(e + 4);
        lastUsed = (lastUsed + 1) & 0xffff;
        if (eventIdx) setUsedEvent(lastUsed);
        if (lastHead >= 0 && lastHead < size) {
            for (int i = 0; i < chainLen[lastHead]; i++) free[nfree++] = chainDescs[lastHead][i];
            chainLen[lastHead] = 0;
        }
        outstanding--;
        return true;
    }

    public int lastHead() { return lastHead; }
    public int lastLen() { return lastLen; }

    /** The status byte of {@code head}'s request (0xff until the device writes it). */
    public int status(int head) { return NativeMemory.getByte(status + head) & 0xff; }

    /** Waits up to {@code timeoutMs} for an interrupt. */
    public boolean awaitInterrupt(long timeoutMs) {
        try {
            return irq.tryAcquire(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** Polls (and waits for interrupts) until a used element arrives or {@code timeoutMs} passes. */
    public boolean waitUsed(long timeoutMs) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        while (!pollUsed()) {
            long left = deadline - System.nanoTime();
            if (left <= 0) return false;
            awaitInterrupt(Math.max(1, Math.min(left / 1_000_000L, 5)));
        }
        return true;
    }
}
