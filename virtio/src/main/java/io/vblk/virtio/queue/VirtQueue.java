package io.vblk.virtio.queue;

import io.vblk.block.NativeMemory;
import io.vblk.virtio.memory.GuestMemory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

import static io.vblk.virtio.VirtioSpec.*;

/**
 * A split virtqueue seen from the device: QEMU's VirtQueue (virtqueue_split_pop, virtqueue_fill/
 * flush, virtio_should_notify, virtio_queue_set_notification), rust-vmm's virtio-queue Queue.
 * It pops descriptor chains, validates them, translates their buffers through {@link GuestMemory},
 * writes the used ring, and decides when to interrupt. It knows nothing about block devices.
 *
 * <p>Confined to one thread at a time: configuration while the queue is inactive, pop/push on the
 * queue's I/O thread while active. Ring indices are read with acquire and written with release
 * (VarHandles on native memory); element reads after an acquire of avail.idx are ordered by it.
 *
 * <p>{@link #pop} distinguishes a malformed chain (returned with {@link DescriptorChain#error()}, its
 * head can still be returned) from a corrupt ring ({@link #POP_BROKEN}: avail.idx ran more than
 * the queue size ahead or a head index is out of range), after which the queue refuses to pop
 * until it is reconfigured.
 *
 * <p>An optional {@link InflightTracker} (vhost-user INFLIGHT_SHMFD) is told of every pop and every
 * used-ring publication; at {@link #activate()} it names the heads a previous device left in
 * flight, and {@link #pop} hands those out again (re-walking their chains in guest memory) before
 * it takes anything new from the avail ring. Without a tracker pop and push cost one null check.
 */
public final class VirtQueue {
    public static final int POP_EMPTY = 0, POP_CHAIN = 1, POP_BROKEN = -1;

    private static final MemorySegment ALL = NativeMemory.ALL;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16U = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32U = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64U = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle IDX = U16.varHandle();

    private final int index;
    private final int maxSize;
    // configuration (set while inactive)
    private int size;
    private long descGpa, availGpa, usedGpa;
    private GuestMemory memory;
    private boolean eventIdx, indirectDesc;
    private Interrupt interrupt = Interrupt.NONE;
    // state while active (queue thread)
    private boolean active;
    private boolean ready;                   // addresses set by the driver (virtio-pci queue_enable)
    private long desc, avail, used;          // host addresses, validated at activation
    private int lastAvail;                   // next avail slot to pop (16-bit counter)
    private int usedIdx;                     // shadow of used.idx (16-bit counter)
    private int signalledUsed;
    private boolean signalledUsedValid;
    private boolean notificationEnabled = true;
    private int pushedSinceSignal;
    private String brokenReason;
    // inflight tracking (set while inactive; null = none)
    private InflightTracker tracker;
    private int[] resubmit;                  // heads to hand out again before the avail ring, oldest first; null when done
    private int resubmitPos;
    private int resubmitted;                 // how many heads the last activation found in flight

    public VirtQueue(int index, int maxSize) {
        if (Integer.bitCount(maxSize) != 1 || maxSize > MAX_QUEUE_SIZE) {
            throw new IllegalArgumentException("queue size must be a power of two <= 32768: " + maxSize);
        }
        this.index = index;
        this.maxSize = maxSize;
        this.size = maxSize;
    }

    public int index() { return index; }
    public int maxSize() { return maxSize; }
    public int size() { return size; }
    public boolean isActive() { return active; }
    /** Why the ring is unusable, or null. */
    public String brokenReason() { return brokenReason; }
    public long descAddress() { return descGpa; }
    public long availAddress() { return availGpa; }
    public long usedAddress() { return usedGpa; }

    /** Queue size chosen by the driver: a power of two, at most {@link #maxSize()}. */
    public void setSize(int n) {
        if (n <= 0 || Integer.bitCount(n) != 1 || n > maxSize) {
            throw new IllegalArgumentException("queue " + index + ": size " + n + " is not a power of two <= " + maxSize);
        }
        size = n;
    }

    /** Guest-physical addresses of the descriptor table, avail ring and used ring. */
    public void setAddresses(long descGpa, long availGpa, long usedGpa) {
        this.descGpa = descGpa;
        this.availGpa = availGpa;
        this.usedGpa = usedGpa;
        this.ready = true;
    }

    /** True once the driver set the ring addresses (and until reset). */
    public boolean isReady() { return ready; }

    public void setMemory(GuestMemory memory) { this.memory = memory; }

    /** Negotiated features that change the ring protocol (EVENT_IDX, INDIRECT_DESC). */
    public void setFeatures(long features) {
        eventIdx = (features & bit(F_EVENT_IDX)) != 0;
        indirectDesc = (features & bit(F_INDIRECT_DESC)) != 0;
    }

    public boolean eventIdx() { return eventIdx; }

    public void setNotifier(Interrupt interrupt) { this.interrupt = interrupt == null ? Interrupt.NONE : interrupt; }

    /**
     * Inflight tracking for the next activation and after (null: none). Set while inactive; the
     * tracker sees this queue's pops and pushes from the queue's thread.
     */
    public void setInflightTracker(InflightTracker t) { this.tracker = t; }

    public InflightTracker inflightTracker() { return tracker; }

    /** Heads the last {@link #activate()} found in flight (resubmitted before new avail entries). */
    public int resubmittedAtActivation() { return resubmitted; }

    /** Resubmitted heads not yet handed out by {@link #pop}. */
    public int resubmitPending() { return resubmit == null ? 0 : resubmit.length - resubmitPos; }

    /** Next avail index the device will pop (vhost-user GET_VRING_BASE). */
    public int lastAvailIdx() { return lastAvail; }

    /** Where to resume popping (vhost-user SET_VRING_BASE); also resets the signalled-used state. */
    public void setLastAvailIdx(int idx) {
        lastAvail = idx & 0xffff;
        signalledUsedValid = false;
    }

    /** The device's used index (shadow of used.idx). */
    public int usedIdx() { return usedIdx; }

    /**
     * Translates and checks the rings; returns null on success or why the rings are unusable
     * (outside guest memory or misaligned). The used index is taken from the ring, so a queue
     * restarts from the driver's indices (QEMU's virtio_load / vhost-user restart).
     */
    public String activate() {
        active = false;
        brokenReason = null;
        if (memory == null) return fail("no guest memory");
        desc = memory.translate(descGpa, descTableSize(size));
        avail = memory.translate(availGpa, availRingSize(size));
        used = memory.translate(usedGpa, usedRingSize(size));
        if (desc == -1 || avail == -1 || used == -1) {
            return fail(String.format("queue %d: ring outside guest memory (desc 0x%x avail 0x%x used 0x%x size %d)", index, descGpa, availGpa, usedGpa, size));
        }
        if ((desc & 15) != 0 || (avail & 1) != 0 || (used & 3) != 0) {
            return fail("queue " + index + ": misaligned ring");
        }
        usedIdx = Short.toUnsignedInt((short) IDX.getAcquire(ALL, used + 2));
        resubmit = null;
        resubmitPos = resubmitted = 0;
        if (tracker != null) {
            String err = recoverInflight();
            if (err != null) return fail(err);
        }
        pushedSinceSignal = 0;
        signalledUsedValid = false;
        notificationEnabled = true;
        active = true;
        return null;
    }

    /**
     * Asks the tracker which heads a previous device left in flight (it first repairs its last
     * batch against our used index) and resumes the avail ring after them: every head ever popped
     * is either in the used ring or in flight, so the next one to pop is used.idx + in flight
     * (vu_check_queue_inflights).
     */
    private String recoverInflight() {
        int[] heads = tracker.recoverHeads(usedIdx);
        if (heads.length > size) return "queue " + index + ": inflight record lists " + heads.length + " heads for a ring of " + size;
        for (int h : heads) {
            if (h < 0 || h >= size) return "queue " + index + ": inflight record lists head " + h + " (ring size " + size + ")";
        }
        lastAvail = (usedIdx + heads.length) & 0xffff;
        resubmitted = heads.length;
        if (heads.length > 0) resubmit = heads;
        return null;
    }

    private String fail(String why) {
        brokenReason = why;
        return why;
    }

    /** Stops using the rings (they are not touched again until {@link #activate()}). */
    public void deactivate() {
        active = false;
    }

    /** Forgets everything the driver set (device reset). */
    public void reset() {
        active = false;
        ready = false;
        size = maxSize;
        descGpa = availGpa = usedGpa = 0;
        lastAvail = usedIdx = 0;
        signalledUsedValid = false;
        notificationEnabled = true;
        pushedSinceSignal = 0;
        brokenReason = null;
        eventIdx = indirectDesc = false;
        resubmit = null;
        resubmitPos = resubmitted = 0;
    }

    // ------------------------------------------------------------------ popping

    private int availIdxAcquire() {
        return Short.toUnsignedInt((short) IDX.getAcquire(ALL, avail + 2));
    }

    /** Entries the driver has made available and the device has not popped (resubmissions included); -1 if the ring is corrupt. */
    public int pending() {
        if (!active) return 0;
        int n = (availIdxAcquire() - lastAvail) & 0xffff;
        return n > size ? -1 : n + resubmitPending();
    }

    /**
     * Pops the next chain into {@code c} (virtqueue_split_pop). Returns {@link #POP_EMPTY},
     * {@link #POP_CHAIN} (check {@code c.error()}) or {@link #POP_BROKEN} (see {@link #brokenReason()}).
     */
    public int pop(DescriptorChain c) {
        if (!active) return brokenReason != null ? POP_BROKEN : POP_EMPTY;
        if (tracker != null) return popTracked(c);
        int head = nextAvail();
        if (head < 0) return head == NO_HEAD ? POP_EMPTY : POP_BROKEN;
        walk(c, head);
        return POP_CHAIN;
    }

    /** Pop with inflight tracking: resubmitted heads first (already recorded), then the avail ring, recording each head. */
    private int popTracked(DescriptorChain c) {
        int[] r = resubmit;
        int head;
        if (r != null) {
            head = r[resubmitPos++];
            if (resubmitPos == r.length) resubmit = null;
        } else {
            head = nextAvail();
            if (head < 0) return head == NO_HEAD ? POP_EMPTY : POP_BROKEN;
            tracker.begin(head);
        }
        walk(c, head);
        return POP_CHAIN;
    }

    private static final int NO_HEAD = -1, BROKEN_HEAD = -2;

    /** Takes the next head from the avail ring: the head, {@link #NO_HEAD} or {@link #BROKEN_HEAD}. */
    private int nextAvail() {
        int availIdx = availIdxAcquire(); // acquire: descriptor reads below see the driver's writes
        int pending = (availIdx - lastAvail) & 0xffff;
        if (pending == 0) return NO_HEAD;
        if (pending > size) {
            broken(String.format("queue %d: avail.idx %d is %d ahead of last_avail_idx %d (size %d)", index, availIdx, pending, lastAvail, size));
            return BROKEN_HEAD;
        }
        int head = Short.toUnsignedInt(ALL.get(U16U, avail + 4 + 2L * (lastAvail & (size - 1))));
        if (head >= size) {
            broken("queue " + index + ": head " + head + " >= size " + size);
            return BROKEN_HEAD;
        }
        lastAvail = (lastAvail + 1) & 0xffff;
        if (eventIdx && notificationEnabled) {
            setAvailEvent(lastAvail);
        }
        return head;
    }

    private int broken(String why) {
        brokenReason = why;
        active = false;
        return POP_BROKEN;
    }

    private void walk(DescriptorChain c, int head) {
        c.reset(head);
        long table = desc;
        int tableSize = size;
        int idx = head;
        int count = 0;
        boolean inIndirect = false, writeSeen = false;
        long total = 0;
        while (true) {
            if (++count > tableSize) {
                c.error = ChainError.LOOP;
                return;
            }
            long d = table + 16L * idx;
            long addr = ALL.get(U64U, d);
            long len = Integer.toUnsignedLong(ALL.get(U32U, d + 8));
            int flags = Short.toUnsignedInt(ALL.get(U16U, d + 12));
            int next = Short.toUnsignedInt(ALL.get(U16U, d + 14));
            c.descriptors++;
            if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
                if (inIndirect) { c.error = ChainError.NESTED_INDIRECT; return; }
                if (!indirectDesc) { c.error = ChainError.INDIRECT_NOT_NEGOTIATED; return; }
                if ((flags & VIRTQ_DESC_F_NEXT) != 0) { c.error = ChainError.INDIRECT_WITH_NEXT; return; }
                if (len == 0 || (len & 15) != 0) { c.error = ChainError.INDIRECT_BAD_LENGTH; return; }
                long t = memory.translate(addr, len);
                if (t == -1) { c.error = ChainError.INDIRECT_OUT_OF_RANGE; return; }
                table = t;
                tableSize = (int) Math.min(len / 16, Integer.MAX_VALUE);
                idx = 0;
                count = 0;
                inIndirect = true;
                c.indirect = true;
                continue;
            }
            total += len;
            if (total > 0xffffffffL) { c.error = ChainError.LENGTH_OVERFLOW; return; }
            if ((flags & VIRTQ_DESC_F_WRITE) != 0) {
                writeSeen = true;
                if (!memory.appendTo(c.writable, addr, len)) { c.error = ChainError.ADDRESS_OUT_OF_RANGE; return; }
            } else {
                if (writeSeen) { c.error = ChainError.READABLE_AFTER_WRITABLE; return; }
                if (!memory.appendTo(c.readable, addr, len)) { c.error = ChainError.ADDRESS_OUT_OF_RANGE; return; }
            }
            if ((flags & VIRTQ_DESC_F_NEXT) == 0) return;
            if (next >= tableSize) { c.error = ChainError.NEXT_OUT_OF_RANGE; return; }
            idx = next;
        }
    }

    // ------------------------------------------------------------------ completing

    /**
     * Puts {@code head} with {@code len} bytes written into the used ring and publishes used.idx
     * with a release store, so the element is visible before the index (virtqueue_fill + flush).
     */
    public void push(int head, int len) {
        if (!active) return;
        if (tracker != null) {
            pushTracked(head, len);
            return;
        }
        publish(head, len);
    }

    /**
     * Publication with inflight tracking (vu_queue_inflight_pre_put, flush, post_put): the tracker
     * learns the head before the element is written, and clears it only once used.idx is stored, so
     * a crash anywhere in between leaves either the head in flight with the ring's used index
     * unchanged, or the ring's used index ahead of the tracker's, which tells recovery to clear
     * the last head.
     */
    private void pushTracked(int head, int len) {
        tracker.prePut(head);
        VarHandle.storeStoreFence();      // last_batch_head before the element and used.idx
        publish(head, len);
        VarHandle.storeStoreFence();      // used.idx before the tracker's inflight = 0
        tracker.postPut(head, usedIdx);
    }

    private void publish(int head, int len) {
        long e = used + 4 + 8L * (usedIdx & (size - 1));
        ALL.set(U32U, e, head);
        ALL.set(U32U, e + 4, len);
        usedIdx = (usedIdx + 1) & 0xffff;
        IDX.setRelease(ALL, used + 2, (short) usedIdx);
        pushedSinceSignal++;
    }

    /** Used elements pushed since the last interrupt decision. */
    public int unsignalled() { return pushedSinceSignal; }

    /**
     * Decides whether the driver wants an interrupt for what was pushed since the last decision
     * (virtio_split_should_notify): EVENT_IDX's used_event test, else the NO_INTERRUPT flag.
     */
    public boolean shouldNotify() {
        if (!active) return false;
        pushedSinceSignal = 0;
        VarHandle.fullFence(); // used.idx store before reading the driver's suppression fields
        if (!eventIdx) {
            return (Short.toUnsignedInt((short) IDX.getVolatile(ALL, avail)) & VIRTQ_AVAIL_F_NO_INTERRUPT) == 0;
        }
        int usedEvent = usedEvent();
        boolean valid = signalledUsedValid;
        int old = signalledUsed;
        signalledUsed = usedIdx;
        signalledUsedValid = true;
        return !valid || needEvent(usedEvent, usedIdx, old);
    }

    /** Signals the interrupt if anything was pushed and the driver wants to hear about it; true if it did. */
    public boolean notifyIfNeeded() {
        if (pushedSinceSignal > 0 && shouldNotify()) {
            interrupt.signal();
            return true;
        }
        return false;
    }

    // ------------------------------------------------------------------ driver notifications (kicks)

    /** False between {@link #disableNotification} and {@link #enableNotification}. */
    public boolean notificationEnabled() { return notificationEnabled; }

    /** Asks the driver not to kick while the device is processing (virtio_queue_set_notification(0)). */
    public void disableNotification() {
        if (!active) return;
        notificationEnabled = false;
        if (!eventIdx) {
            int f = Short.toUnsignedInt((short) IDX.getVolatile(ALL, used));
            IDX.setRelease(ALL, used, (short) (f | VIRTQ_USED_F_NO_NOTIFY));
        }
    }

    /**
     * Asks the driver to kick again, then checks the ring once more (the re-enable-then-recheck
     * step). Returns true if the ring is empty, so the device may sleep; false if more arrived.
     */
    public boolean enableNotification() {
        if (!active) return true;
        notificationEnabled = true;
        if (eventIdx) {
            setAvailEvent(availIdxAcquire());
        } else {
            int f = Short.toUnsignedInt((short) IDX.getVolatile(ALL, used));
            IDX.setRelease(ALL, used, (short) (f & ~VIRTQ_USED_F_NO_NOTIFY));
        }
        VarHandle.fullFence(); // the flag/event store before re-reading avail.idx
        return availIdxAcquire() == lastAvail;
    }

    private void setAvailEvent(int v) {
        IDX.setRelease(ALL, availEventAddr(), (short) v);
    }

    /** The driver's used_event (EVENT_IDX), after the avail ring. */
    private int usedEvent() {
        return Short.toUnsignedInt((short) IDX.getVolatile(ALL, avail + 4 + 2L * size));
    }

    /** Where the device's avail_event (EVENT_IDX) lives, after the used ring. */
    private long availEventAddr() {
        return used + 4 + 8L * size;
    }

    /**
     * Both sides' indices and suppression fields, read racily from guest memory, for a log line
     * when a queue stops: a stalled guest shows whether the device left requests in the ring
     * (avail.idx ahead of last_avail) or the driver missed completions (used.idx ahead of what it
     * asked to hear about).
     */
    public String describeRings() {
        if (!active) return "inactive";
        return "avail.idx " + availIdxAcquire() + ", last_avail " + lastAvail + ", used.idx " + usedIdx
                + (eventIdx ? ", used_event " + usedEvent()
                        + ", avail_event " + Short.toUnsignedInt((short) IDX.getVolatile(ALL, availEventAddr()))
                        : ", avail.flags " + Short.toUnsignedInt((short) IDX.getVolatile(ALL, avail))
                        + ", used.flags " + Short.toUnsignedInt((short) IDX.getVolatile(ALL, used)))
                + ", notifications " + (notificationEnabled ? "on" : "off");
    }

    @Override
    public String toString() {
        return "VirtQueue[" + index + " size=" + size + " last_avail=" + lastAvail + " used=" + usedIdx + (active ? " active" : "") + "]";
    }
}
