package io.vblk.virtio.blk;

import io.vblk.block.AioContext;
import io.vblk.block.BlockLimits;
import io.vblk.block.BlockNode;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.queue.Interrupt;
import io.vblk.virtio.queue.VirtQueue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Logger;

import static io.vblk.virtio.VirtioSpec.*;

/**
 * A virtio-blk device on a {@link BlockNode}: QEMU's VirtIOBlock (hw/block/virtio-blk.c) without
 * a transport. The embedder (an in-process VMM, the vhost-user server, a test's GuestDriver) plays
 * the transport: it negotiates features, reads config space, sets queue addresses and status, and
 * calls {@link #kick(int)}; the device calls each queue's {@link Interrupt} and the config
 * interrupt.
 *
 * <p>Each queue runs on one {@link AioContext} (queue i on {@code queueContexts[i % n]}); the node
 * is shared. Control calls ({@link #setDriverFeatures}, {@link #setStatus}, {@link #startQueue},
 * {@link #stopQueue}, {@link #reset}) come from one control thread at a time, never from a queue's
 * coroutine. No exception from the data path reaches the caller: a failure becomes a status, a
 * dropped chain, or DEVICE_NEEDS_RESET.
 */
public final class VirtioBlkDevice {
    private static final Logger LOG = Logger.getLogger(VirtioBlkDevice.class.getName());

    final BlockNode node;
    final VirtioBlkConfig cfg;
    private final QueueWorker[] workers;
    final boolean readOnly;
    final byte[] serialBytes;
    private final long offered;
    private final boolean initialWriteCache;

    private volatile long driverFeatures;                           // control thread writes
    private final AtomicInteger status = new AtomicInteger();       // any thread
    private volatile GuestMemory memory;                            // control thread writes
    private volatile Interrupt configInterrupt = Interrupt.NONE;    // control thread writes
    private volatile long capacitySectors;                          // control thread writes
    private volatile boolean paused;                                // set on a queue thread (werror=stop), cleared by resume
    private volatile String needsResetReason;
    volatile int lastError;
    volatile long droppedChains;

    public VirtioBlkDevice(BlockNode node, VirtioBlkConfig cfg, AioContext[] queueContexts) {
        if (cfg.numQueues < 1 || cfg.numQueues > 0xffff) throw new IllegalArgumentException("num-queues must be 1..65535");
        if (queueContexts.length == 0) throw new IllegalArgumentException("need at least one AioContext");
        if (Integer.bitCount(cfg.logicalBlockSize) != 1 || cfg.logicalBlockSize < 512) {
            throw new IllegalArgumentException("logical block size must be a power of two >= 512");
        }
        if (cfg.physicalBlockSize < cfg.logicalBlockSize || Integer.bitCount(cfg.physicalBlockSize) != 1) {
            throw new IllegalArgumentException("physical block size must be a power of two >= the logical block size");
        }
        if (cfg.irqCoalesceNs < 0 || cfg.irqCoalesceMax < 1) {
            throw new IllegalArgumentException("interrupt coalescing needs a time >= 0 and a count >= 1");
        }
        if (cfg.kickHoldNs < 0) throw new IllegalArgumentException("kick holding needs a time >= 0");
        if (cfg.kickHoldDepth < 1) throw new IllegalArgumentException("kick holding needs a depth >= 1");
        this.node = node;
        this.cfg = cfg;
        this.readOnly = cfg.readOnly || node.isReadOnly();
        this.serialBytes = cfg.serial == null ? new byte[0] : cfg.serial.getBytes(StandardCharsets.US_ASCII);
        this.workers = new QueueWorker[cfg.numQueues];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new QueueWorker(this, i, cfg.queueSize, queueContexts[i % queueContexts.length], node);
        }
        this.initialWriteCache = node.writeCacheEnabled();
        refreshCapacity();
        long f = bit(F_VERSION_1) | bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH)
                | bit(VIRTIO_BLK_F_TOPOLOGY);
        if (cfg.configWce) f |= bit(VIRTIO_BLK_F_CONFIG_WCE);
        if (cfg.numQueues > 1) f |= bit(VIRTIO_BLK_F_MQ);
        if (cfg.discard) f |= bit(VIRTIO_BLK_F_DISCARD);
        if (cfg.writeZeroes) f |= bit(VIRTIO_BLK_F_WRITE_ZEROES);
        if (readOnly) f |= bit(VIRTIO_BLK_F_RO);
        if (cfg.indirectDesc) f |= bit(F_INDIRECT_DESC);
        if (cfg.eventIdx) f |= bit(F_EVENT_IDX);
        if (cfg.sizeMax > 0) f |= bit(VIRTIO_BLK_F_SIZE_MAX);
        this.offered = f;
    }

    // ------------------------------------------------------------------ features and status

    /** Features the device offers. */
    public long deviceFeatures() { return offered; }

    public long driverFeatures() { return driverFeatures; }

    boolean hasFeature(int b) { return (driverFeatures & bit(b)) != 0; }

    /**
     * The driver's accepted features (bits the device did not offer are kept and make
     * FEATURES_OK fail). Also applies the write-cache rule, from the configured cache each time:
     * the cache is on exactly when FLUSH was negotiated and the node was opened with it on
     * (without CONFIG_WCE the legacy "auto writethrough"; with CONFIG_WCE but no FLUSH the spec's
     * writeback = 0). A negotiation follows a device reset, which restores the configured cache
     * in QEMU too (original_wce); a vhost-user front-end may not tell the back-end of that reset,
     * so each negotiation starts over here. Otherwise a firmware driver that negotiates without
     * FLUSH (SeaBIOS) left every later write of the guest's own driver FUA.
     */
    public void setDriverFeatures(long features) {
        driverFeatures = features;
        boolean flush = (features & bit(VIRTIO_BLK_F_FLUSH)) != 0;
        node.setWriteCacheEnabled(flush && initialWriteCache);
        for (QueueWorker w : workers) w.vq.setFeatures(features);
    }

    public int status() { return status.get(); }

    /** True while the node's write cache is on (writeback = 1 in the config space). */
    public boolean writeCacheEnabled() { return node.writeCacheEnabled(); }

    /**
     * Driver writes the status register. 0 resets the device. FEATURES_OK sticks only if the
     * driver's features are a subset of the offered ones and include VERSION_1. DRIVER_OK starts
     * every queue whose addresses were set.
     */
    public void setStatus(int s) {
        if (s == 0) {
            reset();
            return;
        }
        int old = status.get();
        if ((s & S_FEATURES_OK) != 0 && (old & S_FEATURES_OK) == 0) {
            long f = driverFeatures;
            if ((f & ~offered) != 0 || (f & bit(F_VERSION_1)) == 0) {
                s &= ~S_FEATURES_OK;
            }
        }
        s |= old & S_DEVICE_NEEDS_RESET;
        status.set(s);
        if ((s & S_DRIVER_OK) != 0 && (old & S_DRIVER_OK) == 0) {
            for (int i = 0; i < workers.length; i++) {
                if (workers[i].vq.isReady()) {
                    String err = startQueue(i);
                    if (err != null) needsReset(err);
                }
            }
        }
    }

    public void setConfigInterrupt(Interrupt i) { configInterrupt = i == null ? Interrupt.NONE : i; }

    /** Why the device set DEVICE_NEEDS_RESET, or null. */
    public String needsResetReason() { return needsResetReason; }

    boolean canProcess() { return !paused && needsResetReason == null; }

    /** The device hit an error it cannot report per request: DEVICE_NEEDS_RESET + config interrupt (virtio_error). */
    void needsReset(String why) {
        if (needsResetReason != null) return;
        needsResetReason = why;
        LOG.warning("virtio-blk: " + why + "; device needs reset");
        int old = status.getAndUpdate(v -> v | S_DEVICE_NEEDS_RESET);
        if ((old & S_DRIVER_OK) != 0) {
            try {
                configInterrupt.signal();
            } catch (Throwable t) {
                LOG.warning("config interrupt failed: " + t);
            }
        }
    }

    // ------------------------------------------------------------------ config space

    /** Re-reads the node's length (after a resize); the embedder then sends a config interrupt. */
    public void refreshCapacity() {
        long len = node.getLength();
        capacitySectors = len < 0 ? 0 : len >> VIRTIO_BLK_SECTOR_BITS;
    }

    public long capacitySectors() { return capacitySectors; }

    /** The node was resized: re-reads its length and sends a configuration change interrupt. */
    public void resized() {
        refreshCapacity();
        if ((status.get() & S_DRIVER_OK) != 0) configInterrupt.signal();
    }

    /** The 96-byte virtio_blk_config as it reads now. */
    public byte[] configSpace() {
        ByteBuffer b = ByteBuffer.allocate(CONFIG_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        int lbs = cfg.logicalBlockSize;
        BlockLimits lim = node.limits();
        b.putLong(CFG_CAPACITY, capacitySectors);
        b.putInt(CFG_SIZE_MAX, cfg.sizeMax);
        b.putInt(CFG_SEG_MAX, segMax());
        b.putInt(CFG_BLK_SIZE, lbs);
        b.put(CFG_PHYSICAL_BLOCK_EXP, (byte) Integer.numberOfTrailingZeros(cfg.physicalBlockSize / lbs));
        b.put(CFG_ALIGNMENT_OFFSET, (byte) 0);
        b.putShort(CFG_MIN_IO_SIZE, (short) Math.min(0xffff, Math.max(lim.requestAlignment, lbs) / lbs));
        b.putInt(CFG_OPT_IO_SIZE, (int) Math.min(0xffffffffL, lim.optTransfer / lbs));
        b.put(CFG_WRITEBACK, (byte) (node.writeCacheEnabled() ? 1 : 0));
        b.putShort(CFG_NUM_QUEUES, (short) cfg.numQueues);
        b.putInt(CFG_MAX_DISCARD_SECTORS, (int) maxDiscardSectors());
        b.putInt(CFG_MAX_DISCARD_SEG, cfg.maxDiscardSeg);
        b.putInt(CFG_DISCARD_SECTOR_ALIGNMENT, Math.max(lim.pdiscardAlignment, lbs) >> VIRTIO_BLK_SECTOR_BITS);
        b.putInt(CFG_MAX_WRITE_ZEROES_SECTORS, (int) maxWriteZeroesSectors());
        b.putInt(CFG_MAX_WRITE_ZEROES_SEG, cfg.maxWriteZeroesSeg);
        b.put(CFG_WRITE_ZEROES_MAY_UNMAP, (byte) (node.discardUnmap() ? 1 : 0));
        return b.array();
    }

    /** Reads {@code len} bytes of config space from {@code off}; bytes past the end read as 0. */
    public byte[] readConfig(int off, int len) {
        byte[] out = new byte[Math.max(0, len)];
        if (off < 0 || off >= CONFIG_SIZE) return out;
        byte[] c = configSpace();
        System.arraycopy(c, off, out, 0, Math.min(len, CONFIG_SIZE - off));
        return out;
    }

    /** Driver writes config space: only {@code writeback} is writable, and only with CONFIG_WCE. */
    public void writeConfig(int off, byte[] data) {
        if (data == null || off > CFG_WRITEBACK || off + data.length <= CFG_WRITEBACK) return;
        if (!hasFeature(VIRTIO_BLK_F_CONFIG_WCE)) return;
        node.setWriteCacheEnabled(data[CFG_WRITEBACK - off] != 0);
    }

    int segMax() { return cfg.segMax > 0 ? cfg.segMax : Math.max(1, cfg.queueSize - 2); }

    long maxDiscardSectors() {
        long m = node.limits().maxPdiscard;
        long def = (Integer.MAX_VALUE & ~(long) (cfg.logicalBlockSize - 1)) >> VIRTIO_BLK_SECTOR_BITS;
        return m > 0 ? Math.min(def, m >> VIRTIO_BLK_SECTOR_BITS) : def;
    }

    long maxWriteZeroesSectors() {
        long m = node.limits().maxPwriteZeroes;
        long def = (Integer.MAX_VALUE & ~(long) (cfg.logicalBlockSize - 1)) >> VIRTIO_BLK_SECTOR_BITS;
        return m > 0 ? Math.min(def, m >> VIRTIO_BLK_SECTOR_BITS) : def;
    }

    long maxTransfer() {
        long m = node.limits().maxTransfer;
        return m > 0 ? Math.min(m, Integer.MAX_VALUE) : Integer.MAX_VALUE;
    }

    int maxIov() {
        int m = node.limits().maxIov;
        return m > 0 ? m : 1024;
    }

    /** virtio_blk_sect_range_ok: sector and size aligned to the logical block, inside capacity. */
    boolean sectorRangeOk(long sector, long size) {
        int lbs = cfg.logicalBlockSize;
        if (size % VIRTIO_BLK_SECTOR_SIZE != 0 || size % lbs != 0) return false;
        if ((sector & ((lbs >> VIRTIO_BLK_SECTOR_BITS) - 1)) != 0) return false;
        long total = capacitySectors;
        long n = size >> VIRTIO_BLK_SECTOR_BITS;
        return sector >= 0 && sector <= total && n <= total - sector;
    }

    // ------------------------------------------------------------------ memory and queues

    public void setMemory(GuestMemory m) {
        memory = m;
        for (QueueWorker w : workers) w.vq.setMemory(m);
    }

    public GuestMemory memory() { return memory; }

    public int numQueues() { return workers.length; }

    /** Queue {@code i}, for setSize/setAddresses/setLastAvailIdx/setNotifier while it is stopped. */
    public VirtQueue queue(int i) { return workers[i].vq; }

    public AioContext queueContext(int i) { return workers[i].ctx; }

    /** {@link VirtQueue#describeRings()} of queue {@code q} with its requests in flight (racy; for logs). */
    public String describeQueue(int q) {
        QueueWorker w = workers[q];
        return w.vq.describeRings() + ", " + w.inFlight + " in flight" + (w.kicksHeld() ? ", kicks held" : "");
    }

    /** Queue processing passes started by the I/O threads' busy-polling rather than by a kick (racy read). */
    public long polledPasses() {
        long n = 0;
        for (QueueWorker w : workers) n += w.polled;
        return n;
    }

    /** Queue passes started at a completion while kicks were held ({@link VirtioBlkConfig#kickHoldNs}; racy read). */
    public long heldPasses() {
        long n = 0;
        for (QueueWorker w : workers) n += w.heldPasses;
        return n;
    }

    /**
     * Mean number of a queue's requests in flight in the device just after a request was popped,
     * the popped one included (racy read; 0 before the first request): the queue depth the device
     * sees, as against the driver's. Chooses {@link VirtioBlkConfig#kickHoldDepth}.
     */
    public double meanDepthAtPop() {
        long sum = 0, n = 0;
        for (QueueWorker w : workers) {
            sum += w.inFlightSum;
            n += w.requests;
        }
        return n == 0 ? 0 : sum / (double) n;
    }

    /** Which requests {@link #meanRequestLatencyNanos} averages. */
    public enum LatencyKind { READ, WRITE, OTHER }

    /**
     * Mean time from pop to push of the requests of one kind completed so far, in ns (0 when
     * none; racy read): IN, OUT, or every other type. One request in
     * {@code QueueWorker.LATENCY_SAMPLE} is timed, so that the rest read no clock.
     */
    public long meanRequestLatencyNanos(LatencyKind kind) {
        int k = kind.ordinal();   // QueueWorker's LATENCY_* indices are these ordinals
        long t = 0, n = 0;
        for (QueueWorker w : workers) {
            t += w.latencyNanos[k];
            n += w.timed[k];
        }
        return n == 0 ? 0 : t / n;
    }

    /** The used-buffer notification of queue {@code i}. */
    public void setNotifier(int i, Interrupt irq) { workers[i].vq.setNotifier(irq); }

    /** The driver notified queue {@code q}. Any thread; processing runs on the queue's context. */
    public void kick(int q) {
        if (q >= 0 && q < workers.length) workers[q].kick();
    }

    /**
     * Starts queue {@code q}: checks its rings against guest memory and begins popping from its
     * last avail index (and the used index in the ring). Returns null, or why the rings are
     * unusable. Any non-queue thread.
     */
    public String startQueue(int q) {
        QueueWorker w = workers[q];
        String[] err = new String[1];
        w.ctx.runOnThread(() -> {
            w.vq.setMemory(memory);
            w.vq.setFeatures(driverFeatures);
            err[0] = w.vq.activate();
            w.setStarted(err[0] == null);
        });
        if (err[0] == null) w.kick(); // requests may already wait in the ring
        return err[0];
    }

    /**
     * Stops queue {@code q}: no more pops, waits for in-flight requests (their completions are still
     * published), fails requests held by werror=stop with IOERR, and returns the next avail index
     * (vhost-user GET_VRING_BASE). Not from one of the queue's coroutines.
     */
    public int stopQueue(int q) {
        QueueWorker w = workers[q];
        int[] idx = new int[1];
        onQueueThreadWhenDrained(w, () -> {
            w.failHeld();
            w.vq.deactivate();
            idx[0] = w.vq.lastAvailIdx();
        });
        return idx[0];
    }

    /** Stops popping on {@code w}, waits until nothing is in flight, runs {@code then} on its thread. */
    private static void onQueueThreadWhenDrained(QueueWorker w, Runnable then) {
        CountDownLatch done = new CountDownLatch(1);
        Runnable stop = () -> {
            w.setStarted(false);
            w.whenDrained(() -> {
                try {
                    then.run();
                } finally {
                    done.countDown();
                }
            });
        };
        if (w.ctx.inContext()) {
            stop.run();
            QueueWorker.pollUntil(w.ctx, () -> done.getCount() == 0);
        } else {
            w.ctx.execute(stop);
            try {
                done.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Device reset: stops every queue (draining in-flight requests), drops held requests, clears
     * features, status and NEEDS_RESET; the driver then sets everything up again.
     */
    public void reset() {
        for (QueueWorker w : workers) {
            onQueueThreadWhenDrained(w, () -> {
                w.dropHeld();
                w.vq.reset();
            });
        }
        driverFeatures = 0;
        paused = false;
        needsResetReason = null;
        status.set(0);
        node.setWriteCacheEnabled(initialWriteCache);
    }

    // ------------------------------------------------------------------ werror/rerror=stop

    /** True while paused by an error policy of STOP. */
    public boolean isPaused() { return paused; }

    void pauseOnError(int queue, int errno) {
        if (!paused) {
            paused = true;
            lastError = errno;
            LOG.warning("virtio-blk: queue " + queue + " stopped on " + io.vblk.block.Errno.name(errno) + "; waiting for resume");
        }
    }

    /** Requests held since the device paused, over all queues (racy snapshot). */
    public int heldRequests() {
        int n = 0;
        for (QueueWorker w : workers) n += w.held.size();
        return n;
    }

    /** Resumes after a STOP: retries held requests, then processes what queued meanwhile. Any thread. */
    public void resume() {
        paused = false;
        for (QueueWorker w : workers) {
            w.ctx.execute(() -> {
                w.retryHeld();
                w.process();
            });
        }
    }

    // ------------------------------------------------------------------ statistics

    /** Counters summed over the queues. */
    public Stats stats() {
        long dropped = droppedChains;   // a volatile read first: the plain counters below are re-read on every call
        long k = 0, r = 0, s = 0, d = 0, m = 0, irq = 0;
        for (QueueWorker w : workers) {
            k += w.kicks;
            r += w.requests;
            s += w.submissions;
            d += w.directSubmissions;
            m += w.merged;
            irq += w.interrupts;
        }
        return new Stats(k, r, s, d, m, irq, dropped, lastError);
    }

    /**
     * @param kicks       queue processing passes
     * @param requests    well-formed requests popped
     * @param submissions reads and writes started (after merging)
     * @param directSubmissions of those, the ones started without a coroutine (VirtioBlkConfig.directRw)
     * @param merged      requests folded into another one
     * @param interrupts  used-buffer notifications sent
     * @param dropped     malformed chains returned with len 0
     * @param lastErrno   last errno reported by the node (0 if none)
     */
    public record Stats(long kicks, long requests, long submissions, long directSubmissions, long merged, long interrupts, long dropped, int lastErrno) {}

    @Override
    public String toString() {
        return "VirtioBlkDevice[" + node + " queues=" + workers.length + " status=0x" + Integer.toHexString(status.get()) + "]";
    }
}
