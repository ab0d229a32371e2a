package io.vblk.block;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A node of the block graph: QEMU's BlockDriverState. It owns one {@link BlockDriver}, its
 * children ({@code file}, {@code backing}), its limits, and the state of the generic request
 * path: tracked requests, in-flight count, write and flush generations, dirty bitmaps.
 *
 * <p>The public {@code co*}-free methods ({@link #preadv}, {@link #pwritev}, ...) are the
 * bdrv_co_* entry points: they must run in a coroutine (unless every driver below never parks,
 * like {@code memory} and {@code null}), they validate and shape the request in {@link BlockIo},
 * and they return 0 or a negative errno.
 *
 * <p>Nodes are shared by all I/O threads; the request-path state is guarded as noted per field.
 */
public final class BlockNode {
    /** Options every node understands; the rest go to the driver. */
    static final Set<String> GENERIC_KEYS = Set.of("driver", "node-name", "read-only", "cache.direct",
            "cache.no-flush", "detect-zeroes", "discard", "copy-on-read", "write-cache");

    /** detect-zeroes modes (BlockdevDetectZeroesOptions). */
    public enum DetectZeroes { OFF, ON, UNMAP }

    private static final AtomicInteger NODE_IDS = new AtomicInteger();

    final String nodeName;
    final BlockDriver driver;
    final BlockOptions options;                    // what the node was opened with (read only after open)
    final boolean readOnly;
    final boolean direct;                          // cache.direct: O_DIRECT below
    final boolean noFlush;                         // cache.no-flush: flushes are ignored
    final DetectZeroes detectZeroes;
    final boolean discardUnmap;                    // discard=unmap: MAY_UNMAP allowed, discards pass down
    final boolean copyOnRead;
    volatile boolean writeCacheEnabled = true;     // guest-visible write cache (wce); false: writes become FUA
    private final Map<String, BlockChild> children = new LinkedHashMap<>(); // set during open
    BlockLimits limits = new BlockLimits();        // set at open and by refreshLimits

    // ---- request-path state used by BlockIo (see docs/block-layer.md, "Locks")
    final ReentrantLock reqLock = new ReentrantLock();          // guards the tracked list, overlap ranges, waiter links
    TrackedRequest trackedHead;                                 // intrusive list of tracked requests; guarded by reqLock
    final AtomicInteger serialisingInFlight = new AtomicInteger(); // tracked requests marked serialising; any thread
    final AtomicInteger inFlight = new AtomicInteger();         // requests inside BlockIo; any thread
    final AtomicInteger quiesceCounter = new AtomicInteger();   // >0 while drained; any thread
    volatile Object drainOwner;                                 // coroutine/thread that drained last; its requests pass
    final WaitList drainWaiters = new WaitList();               // drainers waiting for inFlight == 0
    final WaitList quiesceWaiters = new WaitList();             // requests waiting for the drain to end
    final AtomicLong writeGen = new AtomicLong();               // bumped by every driver write; any thread
    volatile long flushedGen;                                   // written only by the holder of activeFlush
    final java.util.concurrent.atomic.AtomicBoolean activeFlush = new java.util.concurrent.atomic.AtomicBoolean(); // one flush at a time
    final WaitList flushWaiters = new WaitList();               // flushes queued behind the active one
    final AtomicLong wrHighestOffset = new AtomicLong();
    volatile long totalBytes = -1;                              // cached length (QEMU's total_sectors); -1 = unknown
    volatile DirtyBitmap[] dirtyBitmaps = new DirtyBitmap[0];   // copy-on-write array; replaced under this
    volatile WriteNotifier[] beforeWriteNotifiers = new WriteNotifier[0]; // copy-on-write array; replaced under this
    private volatile boolean closed;
    private int refCount = 1;                                   // references (bdrv_ref/bdrv_unref); guarded by this

    /** A veto hook run before every write (QEMU's before_write_notifiers). Returns 0 or -errno. */
    public interface WriteNotifier {
        int beforeWrite(BlockNode node, long offset, long bytes, int flags);
    }

    private BlockNode(BlockOptions opts, BlockDriverFactory factory) throws BlockException {
        this.options = opts.copy();
        this.nodeName = opts.get("node-name", "#block" + NODE_IDS.incrementAndGet());
        this.readOnly = opts.getBool("read-only", false);
        this.direct = opts.getBool("cache.direct", false);
        this.noFlush = opts.getBool("cache.no-flush", false);
        this.writeCacheEnabled = opts.getBool("write-cache", true);
        this.copyOnRead = opts.getBool("copy-on-read", false);
        String dz = opts.get("detect-zeroes", "off");
        this.detectZeroes = switch (dz) {
            case "off" -> DetectZeroes.OFF;
            case "on" -> DetectZeroes.ON;
            case "unmap" -> DetectZeroes.UNMAP;
            default -> throw new BlockException(Errno.EINVAL, "Invalid detect-zeroes value '" + dz + "'");
        };
        // default unmap, as qemu-io and qemu-img open images (BDRV_O_UNMAP); -drive users pass discard=ignore
        String disc = opts.get("discard", "unmap");
        this.discardUnmap = switch (disc) {
            case "unmap", "on" -> true;
            case "ignore", "off" -> false;
            default -> throw new BlockException(Errno.EINVAL, "Invalid discard option '" + disc + "'");
        };
        if (detectZeroes == DetectZeroes.UNMAP && !discardUnmap) {
            throw new BlockException(Errno.EINVAL, "setting detect-zeroes to unmap is not allowed without setting discard operation to unmap");
        }
        BlockOptions driverOpts = opts.copy();
        for (String k : GENERIC_KEYS) {
            driverOpts.remove(k);
        }
        this.pendingDriverOptions = driverOpts;
        BlockDriver d = factory.open(this, driverOpts);
        this.driver = d;
        d.attach(this);
        this.pendingDriverOptions = null;
        // everything the driver did not consume, and no child consumed, is an error
        List<String> left = new ArrayList<>();
        for (String k : driverOpts.keys()) {
            left.add(k);
        }
        if (!left.isEmpty()) {
            closeQuietly(d);
            throw new BlockException(Errno.EINVAL, "Block driver '" + factory.name() + "' does not support the option '" + left.get(0) + "'");
        }
        refreshLimits();
        long len = d.getLength();
        this.totalBytes = len >= 0 ? len : -1;
    }

    private BlockOptions pendingDriverOptions; // only during open

    private void closeQuietly(BlockDriver d) {
        try {
            d.close();
        } catch (RuntimeException ignored) {
            // best effort
        }
        for (BlockChild c : children.values()) {
            c.node().closeWithoutFlush();
        }
    }

    /**
     * Opens a node and, through its driver, its children (bdrv_open). {@code driver} must be set,
     * or {@code filename} (for the file driver).
     */
    public static BlockNode open(BlockOptions opts) throws BlockException {
        String drv = opts.get("driver");
        if (drv == null) {
            if (opts.has("filename")) {
                drv = "file";
            } else {
                throw new BlockException(Errno.EINVAL, "Parameter 'driver' is required");
            }
            opts = opts.copy().put("driver", drv);
        }
        BlockDriverFactory f = BlockDrivers.find(drv);
        BlockOptions o = opts.copy();
        return new BlockNode(o, f);
    }

    /**
     * Opens a child from the {@code childName.*} options of this node's driver options, inheriting
     * read-only and cache settings (bdrv_open_child). Called by drivers during open.
     *
     * @param required when false and no options exist for the child, returns null
     */
    public BlockChild openChild(String childName, BlockChild.Role role, boolean required) throws BlockException {
        BlockOptions src = pendingDriverOptions;
        if (src == null) {
            throw new IllegalStateException("openChild outside open");
        }
        BlockOptions co = src.sub(childName);
        src.removeSub(childName);
        if (co.isEmpty()) {
            if (required) {
                throw new BlockException(Errno.EINVAL, "A block device must be specified for \"" + childName + "\"");
            }
            return null;
        }
        inheritInto(co, role);
        BlockNode n = open(co);
        return adopt(childName, role, n);
    }

    /** Opens a child node from explicit options (backing files named in an image header). */
    public BlockChild openChild(String childName, BlockChild.Role role, BlockOptions childOptions) throws BlockException {
        BlockOptions co = childOptions.copy();
        inheritInto(co, role);
        return adopt(childName, role, open(co));
    }

    private void inheritInto(BlockOptions co, BlockChild.Role role) {
        co.putIfAbsent("cache.direct", String.valueOf(direct ? "on" : "off"));
        co.putIfAbsent("cache.no-flush", String.valueOf(noFlush ? "on" : "off"));
        // BDRV_O_UNMAP is inherited by children, as bdrv_inherited_options does
        co.putIfAbsent("discard", discardUnmap ? "unmap" : "ignore");
        // backing files are opened read-only, as QEMU does
        co.putIfAbsent("read-only", (readOnly || role == BlockChild.Role.BACKING) ? "on" : "off");
    }

    /**
     * Attaches an already open node as a child (bdrv_attach_child): the parent takes a reference
     * of its own ({@link #ref()}), so the caller's reference stays valid after the parent closes;
     * the caller still owns, and eventually closes, the reference it had.
     */
    public BlockChild attachChild(String childName, BlockChild.Role role, BlockNode child) {
        child.ref();
        return adopt(childName, role, child);
    }

    /** Makes a node this node opened its child; the parent owns the node's only reference. */
    private BlockChild adopt(String childName, BlockChild.Role role, BlockNode child) {
        BlockChild c = new BlockChild(childName, role, this, child);
        children.put(childName, c);
        return c;
    }

    /** Takes another reference (bdrv_ref); every reference is dropped with {@link #close()}. */
    public synchronized void ref() {
        if (closed) throw new IllegalStateException("ref of a closed node " + this);
        refCount++;
    }

    /** Drops one reference; true when it was the last one and the node must really close. */
    private synchronized boolean unrefIsLast() {
        if (closed) return false;
        return --refCount == 0;
    }

    /** Consumes a driver option during open (null if absent). */
    public String takeOption(String key) {
        BlockOptions src = pendingDriverOptions;
        return src == null ? null : src.remove(key);
    }

    // ------------------------------------------------------------------ graph accessors

    public String nodeName() { return nodeName; }
    public BlockDriver driver() { return driver; }
    public String driverName() { return driver.driverName(); }
    public BlockChild file() { return children.get("file"); }
    public BlockChild backing() { return children.get("backing"); }
    public BlockChild child(String name) { return children.get(name); }
    public Iterable<BlockChild> children() { return children.values(); }
    public BlockLimits limits() { return limits; }
    public boolean isReadOnly() { return readOnly; }
    public boolean isDirect() { return direct; }
    public boolean isNoFlush() { return noFlush; }
    public DetectZeroes detectZeroes() { return detectZeroes; }
    public boolean discardUnmap() { return discardUnmap; }
    public boolean copyOnRead() { return copyOnRead; }
    public BlockOptions options() { return options.copy(); }
    public long writeGen() { return writeGen.get(); }
    public int inFlight() { return inFlight.get(); }
    public long wrHighestOffset() { return wrHighestOffset.get(); }

    /** The file behind this node, walking down file children ("a.qcow2" for qcow2 → file). */
    public String filename() {
        String f = driver.filename();
        if (f != null) return f;
        BlockChild c = file();
        return c == null ? null : c.node().filename();
    }

    /** Guest-visible write cache (virtio-blk writeback); when off, writes are made FUA. */
    public boolean writeCacheEnabled() { return writeCacheEnabled; }
    public void setWriteCacheEnabled(boolean on) { writeCacheEnabled = on; }

    /** Recomputes limits: children first, then this driver (bdrv_refresh_limits). */
    public void refreshLimits() {
        BlockLimits l = new BlockLimits();
        BlockChild f = file();
        if (f != null) {
            l.mergeFromChild(f.node().limits);
        }
        driver.refreshLimits(l);
        limits = l;
    }

    public synchronized void addDirtyBitmap(DirtyBitmap b) {
        DirtyBitmap[] a = java.util.Arrays.copyOf(dirtyBitmaps, dirtyBitmaps.length + 1);
        a[a.length - 1] = b;
        dirtyBitmaps = a;
    }

    public synchronized void removeDirtyBitmap(DirtyBitmap b) {
        dirtyBitmaps = java.util.Arrays.stream(dirtyBitmaps).filter(x -> x != b).toArray(DirtyBitmap[]::new);
    }

    public synchronized void addBeforeWriteNotifier(WriteNotifier n) {
        WriteNotifier[] a = java.util.Arrays.copyOf(beforeWriteNotifiers, beforeWriteNotifiers.length + 1);
        a[a.length - 1] = n;
        beforeWriteNotifiers = a;
    }

    public synchronized void removeBeforeWriteNotifier(WriteNotifier n) {
        beforeWriteNotifiers = java.util.Arrays.stream(beforeWriteNotifiers).filter(x -> x != n).toArray(WriteNotifier[]::new);
    }

    /** Number of requests on the tracked list (tests, info). */
    public int trackedRequestCount() {
        reqLock.lock();
        try {
            int n = 0;
            for (TrackedRequest r = trackedHead; r != null; r = r.next) n++;
            return n;
        } finally {
            reqLock.unlock();
        }
    }

    /** The cached length (total_sectors in bytes), updated by writes past the end and truncate. */
    public long cachedLength() { return totalBytes; }
    public long flushedGen() { return flushedGen; }
    public boolean isQuiesced() { return quiesceCounter.get() > 0; }

    // ------------------------------------------------------------------ the request API

    public int preadv(long offset, long bytes, IoVector qiov, int flags) {
        return BlockIo.preadv(this, offset, bytes, qiov, 0, flags);
    }

    public int preadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        return BlockIo.preadv(this, offset, bytes, qiov, qiovOffset, flags);
    }

    public int pwritev(long offset, long bytes, IoVector qiov, int flags) {
        return BlockIo.pwritev(this, offset, bytes, qiov, 0, flags);
    }

    /**
     * Starts a read or write of {@code bytes} at {@code offset} without a coroutine when the
     * request can go straight to the driver: aligned, inside the node, no serialising request, no
     * drain, none of the write path's extras (write-through, detect-zeroes, notifiers, read-only
     * bitmaps), and a driver chain that takes it ({@link BlockDriver#startRw}; raw over file with
     * Linux AIO). Returns false, having changed nothing, when it cannot: the caller then issues the
     * request with {@link #preadv}/{@link #pwritev} in a coroutine, which also produces any error.
     * When true, {@code done} runs exactly once, later, on this I/O thread. The request is tracked
     * and counted in flight as any other, so drains and serialising requests wait for it.
     */
    public boolean startRw(boolean write, long offset, long bytes, IoVector qiov, long qiovOffset, IoCompletion done) {
        return BlockIo.startRw(this, write, offset, bytes, qiov, qiovOffset, done);
    }

    public int pwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        return BlockIo.pwritev(this, offset, bytes, qiov, qiovOffset, flags);
    }

    public int pwriteZeroes(long offset, long bytes, int flags) {
        return BlockIo.pwriteZeroes(this, offset, bytes, flags);
    }

    public int pdiscard(long offset, long bytes) {
        return BlockIo.pdiscard(this, offset, bytes);
    }

    public int flush() {
        return BlockIo.flush(this);
    }

    /** Length in bytes or a negative errno (bdrv_co_getlength). */
    public long getLength() {
        return BlockIo.getLength(this);
    }

    public int truncate(long offset, boolean exact, PreallocMode prealloc, int flags) {
        return BlockIo.truncate(this, offset, exact, prealloc, flags);
    }

    public int blockStatus(boolean wantZero, long offset, long bytes, BlockStatus out) {
        return BlockIo.blockStatus(this, wantZero, offset, bytes, out);
    }

    /** Fires a debug event on this node (bdrv_debug_event); a debug driver may fail or pause here. */
    public void event(BlkDebugEvent ev) {
        driver.debugEvent(ev);
    }

    /** Waits until no request is in flight on this node and keeps new ones out until {@link #drainEnd()}. */
    public void drainBegin() {
        BlockIo.drainBegin(this);
    }

    public void drainEnd() {
        BlockIo.drainEnd(this);
    }

    /** Waits until no request is in flight (bdrv_drain). */
    public void drain() {
        drainBegin();
        drainEnd();
    }

    /**
     * Drops a reference (bdrv_unref); the last one drains, flushes (unless read-only), closes the
     * driver, then drops the references to the children (bdrv_close). Must run in a coroutine or
     * with drivers that never park. Returns the flush result (0 if references remain).
     */
    public int close() {
        if (!unrefIsLast()) return 0;
        drain();
        int ret = 0;
        if (!readOnly) {
            ret = flush();
        }
        closed = true;
        driver.close();
        for (BlockChild c : children.values()) {
            int r = c.node().close();
            if (ret == 0) ret = r;
        }
        return ret;
    }

    /** Like {@link #close()} without the flush (an open that fails half way, crash simulations). */
    public void closeWithoutFlush() {
        if (!unrefIsLast()) return;
        closed = true;
        try {
            driver.close();
        } catch (RuntimeException ignored) {
            // best effort
        }
        for (BlockChild c : children.values()) {
            c.node().closeWithoutFlush();
        }
    }

    public boolean isClosed() {
        return closed;
    }

    @Override
    public String toString() {
        return "BlockNode[" + nodeName + ", " + (driver == null ? "?" : driver.driverName()) + "]";
    }
}
