package io.vblk.virtio.driver;

import io.vblk.block.NativeMemory;
import io.vblk.virtio.blk.VirtioBlkDevice;
import io.vblk.virtio.memory.GuestMemory;

import static io.vblk.virtio.VirtioSpec.*;

/**
 * Plays the guest's part for a {@link VirtioBlkDevice} on real guest memory, like Linux's
 * virtio_blk + virtio_ring drivers: negotiates features, lays out the rings in an arena of guest
 * RAM, and gives each queue a {@link GuestQueue} that builds chains, kicks and reaps. Used by tests,
 * benchmarks and {@code vblk demo}. Control calls from one thread.
 */
public final class GuestDriver {
    private final VirtioBlkDevice dev;
    private final GuestMemory mem;
    private long next;          // bump allocator over [arenaGpa, arenaEnd)
    private final long arenaEnd;
    private GuestQueue[] queues = new GuestQueue[0];
    private long features;
    private boolean wireInterrupts = true;

    /** A driver for {@code dev} that allocates its rings and buffers in [arenaGpa, arenaGpa+arenaSize). */
    public GuestDriver(VirtioBlkDevice dev, GuestMemory mem, long arenaGpa, long arenaSize) {
        this.dev = dev;
        this.mem = mem;
        this.next = arenaGpa;
        this.arenaEnd = arenaGpa + arenaSize;
        if (mem.translate(arenaGpa, arenaSize) == -1) {
            throw new IllegalArgumentException("driver arena is not inside one guest memory region");
        }
    }

    /** Allocates zeroed guest memory from the arena; returns its guest-physical address. */
    public long alloc(long size, long align) {
        long a = (next + align - 1) & -align;
        if (a + size > arenaEnd) throw new IllegalStateException("guest driver arena exhausted");
        next = a + size;
        NativeMemory.fill(host(a, size), size, (byte) 0);
        return a;
    }

    /** Host address of guest range [gpa, gpa+len). */
    public long host(long gpa, long len) {
        long h = mem.translate(gpa, len);
        if (h == -1) throw new IllegalArgumentException(String.format("0x%x+%d is not guest RAM", gpa, len));
        return h;
    }

    /**
     * Whether {@link #initialize} installs each queue's interrupt as the device's notifier (default).
     * Off when the embedder's own notifier must stay in place; the queues then poll.
     */
    public GuestDriver wireInterrupts(boolean on) {
        wireInterrupts = on;
        return this;
    }

    boolean wiresInterrupts() { return wireInterrupts; }

    public GuestMemory memory() { return mem; }
    public VirtioBlkDevice device() { return dev; }
    public long features() { return features; }

    /**
     * The virtio initialization sequence (spec 3.1.1): ACKNOWLEDGE, DRIVER, features (offered &amp;
     * {@code wanted}), FEATURES_OK (checked), queues of {@code queueSize} on every device queue,
     * DRIVER_OK. Returns the negotiated features.
     */
    public long initialize(long wanted, int queueSize) {
        dev.setMemory(mem);
        dev.setStatus(S_ACKNOWLEDGE);
        dev.setStatus(S_ACKNOWLEDGE | S_DRIVER);
        features = dev.deviceFeatures() & wanted;
        dev.setDriverFeatures(features);
        dev.setStatus(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
        if ((dev.status() & S_FEATURES_OK) == 0) throw new IllegalStateException("device refused features 0x" + Long.toHexString(features));
        int n = (features & bit(VIRTIO_BLK_F_MQ)) != 0 ? dev.numQueues() : 1;
        if (queues.length != n) {
            queues = new GuestQueue[n];
            for (int i = 0; i < n; i++) {
                queues[i] = new GuestQueue(this, i, queueSize, (features & bit(F_EVENT_IDX)) != 0);
            }
        } else {
            for (GuestQueue q : queues) q.resetRings();
        }
        for (GuestQueue q : queues) q.attach();
        dev.setStatus(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        return features;
    }

    /** Every feature the device offers. */
    public long initialize(int queueSize) {
        return initialize(-1L, queueSize);
    }

    public int numQueues() { return queues.length; }

    public GuestQueue queue(int i) { return queues[i]; }
}
