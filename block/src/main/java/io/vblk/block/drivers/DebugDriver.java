package io.vblk.block.drivers;

import io.vblk.block.BlkDebugEvent;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockDriverFactory;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLimits;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.BlockStatus;
import io.vblk.block.Coroutine;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.PreallocMode;
import io.vblk.block.RequestFlags;
import io.vblk.block.Sizes;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * {@code debug}: fault injection over any node, QEMU's blkdebug. It sits on top of its
 * {@code file} child, passes every request through, and acts on {@link BlkDebugEvent}s fired on
 * its node: by the generic request path for the node's own requests (pwritev, pwritev_rmw_head,
 * flush_to_os, ...) and by a format driver above it (qcow2's l2_update, cow_write, ...).
 *
 * <p><b>Error injection</b> follows blkdebug's inject-error rules: when the rule's event fires,
 * the rule becomes active (an event that activates any rule first clears the active set, as
 * blkdebug does); the next I/O through this driver whose type is in the rule's iotype mask and
 * whose range contains the rule's offset (or any range for offset -1) fails with the rule's
 * errno. A {@code once} rule is deleted after it failed one I/O; otherwise it keeps failing every
 * matching I/O until another event replaces the active set or {@link #clearRules()}. Without
 * {@code immediately} the failing request first yields once (blkdebug completes it from a bottom
 * half). An event never fails by itself (QEMU's events return nothing): the error surfaces on
 * the I/O that follows it, e.g. the RMW read after pwritev_rmw_head, the driver write after
 * pwritev, flush_to_disk after flush_to_os.
 *
 * <p><b>Breakpoints</b> ({@link #breakAt}, {@link #waitBreak}, {@link #resume}): the first
 * request that fires the event is suspended (its coroutine parks; a plain thread blocks) under
 * the tag until a test resumes it from any thread; the breakpoint is then gone (one-shot, as
 * blkdebug's suspend rules).
 *
 * <p><b>Power loss</b> ({@code power-loss=on}): writes are held in {@link UnflushedWrites} until
 * a flush reaches flush_to_disk here; {@link #crash()} drops them, so the node below keeps only
 * flushed data. With cache=unsafe (no-flush) nothing is ever committed.
 *
 * <p>Options: {@code file.*} (required), {@code align}, {@code max-transfer}, {@code power-loss},
 * and rules {@code inject-error.N.event}, {@code .errno} (number or name, default EIO),
 * {@code .once}, {@code .immediately}, {@code .offset} (bytes) or {@code .sector} (512-byte
 * units), {@code .iotype} (read, write, write-zeroes, discard, flush, block-status; several
 * joined by '+').
 */
public final class DebugDriver extends BlockDriver {
    /** I/O types of a rule's iotype mask (BlkdebugIOType). */
    public static final int IO_READ = 1, IO_WRITE = 2, IO_WRITE_ZEROES = 4, IO_DISCARD = 8, IO_FLUSH = 16, IO_BLOCK_STATUS = 32;
    /** blkdebug's default mask: everything but block-status. */
    public static final int IO_DEFAULT = IO_READ | IO_WRITE | IO_WRITE_ZEROES | IO_DISCARD | IO_FLUSH;

    public static final BlockDriverFactory FACTORY = new BlockDriverFactory() {
        @Override
        public String name() {
            return "debug";
        }

        @Override
        public BlockDriver open(BlockNode node, BlockOptions o) throws BlockException {
            long align = size(o.remove("align"), 0);
            if (align != 0 && Long.bitCount(align) != 1) {
                throw new BlockException(Errno.EINVAL, "Cannot meet constraints with align " + align);
            }
            long maxTransfer = size(o.remove("max-transfer"), 0);
            boolean powerLoss = o.getBool("power-loss", false);
            o.remove("power-loss");
            List<Rule> rules = new ArrayList<>();
            for (int i = 0; ; i++) {
                BlockOptions r = o.sub("inject-error." + i);
                if (r.isEmpty()) break;
                o.removeSub("inject-error." + i);
                rules.add(parseRule(r));
            }
            BlockChild file = node.openChild("file", BlockChild.Role.FILE, true);
            DebugDriver d = new DebugDriver(file, (int) align, maxTransfer, powerLoss);
            for (Rule r : rules) {
                d.addRule(r);
            }
            return d;
        }
    };

    private static long size(String v, long dflt) throws BlockException {
        return v == null ? dflt : Sizes.parse(v);
    }

    private static Rule parseRule(BlockOptions r) throws BlockException {
        String ev = r.get("event");
        if (ev == null) throw new BlockException(Errno.EINVAL, "debug: inject-error needs an event");
        BlkDebugEvent event;
        try {
            event = BlkDebugEvent.parse(ev);
        } catch (IllegalArgumentException e) {
            throw new BlockException(Errno.EINVAL, "debug: Invalid event name \"" + ev + "\"");
        }
        int errno = parseErrno(r.get("errno", "5"));
        long offset = r.has("offset") ? Sizes.parse(r.get("offset")) : r.has("sector") ? r.getLong("sector", -1) * 512 : -1;
        int mask = r.has("iotype") ? parseIoTypes(r.get("iotype")) : IO_DEFAULT;
        return new Rule(event, errno, r.getBool("once", false), r.getBool("immediately", false), offset, mask);
    }

    private static int parseErrno(String s) throws BlockException {
        try {
            return Integer.parseInt(s);
        } catch (NumberFormatException e) {
            for (int i = 1; i < 200; i++) {
                if (Errno.name(i).equalsIgnoreCase(s)) return i;
            }
            throw new BlockException(Errno.EINVAL, "debug: unknown errno '" + s + "'");
        }
    }

    /** Parses "read+write" style iotype lists. */
    public static int parseIoTypes(String s) throws BlockException {
        int m = 0;
        for (String t : s.split("[+|]")) {
            m |= switch (t.trim().toLowerCase(Locale.ROOT)) {
                case "read" -> IO_READ;
                case "write" -> IO_WRITE;
                case "write-zeroes" -> IO_WRITE_ZEROES;
                case "discard" -> IO_DISCARD;
                case "flush" -> IO_FLUSH;
                case "block-status" -> IO_BLOCK_STATUS;
                default -> throw new BlockException(Errno.EINVAL, "debug: unknown iotype '" + t + "'");
            };
        }
        return m;
    }

    /** An inject-error rule (BlkdebugRule with ACTION_INJECT_ERROR). */
    public static final class Rule {
        final BlkDebugEvent event;
        final int errno;
        final boolean once;
        final boolean immediately;
        final long offset;
        final int iotypes;

        public Rule(BlkDebugEvent event, int errno, boolean once, boolean immediately, long offset, int iotypes) {
            this.event = event;
            this.errno = errno;
            this.once = once;
            this.immediately = immediately;
            this.offset = offset;
            this.iotypes = iotypes;
        }

        @Override
        public String toString() {
            return "inject-error[" + event.optionName() + " " + Errno.name(errno) + (once ? " once" : "") + "]";
        }
    }

    private static final class Breakpoint {
        final BlkDebugEvent event;
        final String tag;

        Breakpoint(BlkDebugEvent event, String tag) {
            this.event = event;
            this.tag = tag;
        }
    }

    private static final class Suspended {
        final String tag;
        final Object waiter;          // Coroutine or Thread
        volatile boolean released;

        Suspended(String tag, Object waiter) {
            this.tag = tag;
            this.waiter = waiter;
        }
    }

    private final BlockChild file;
    private final int align;
    private final long maxTransfer;
    private final UnflushedWrites journal;       // null unless power-loss=on

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition suspendedChanged = lock.newCondition();
    private final List<Rule> rules = new ArrayList<>();             // guarded by lock
    private final List<Rule> active = new ArrayList<>();            // guarded by lock
    private final List<Breakpoint> breakpoints = new ArrayList<>(); // guarded by lock
    private final List<Suspended> suspended = new ArrayList<>();    // guarded by lock
    private volatile boolean anyRules;                               // fast path: no rules, no breakpoints
    private final java.util.concurrent.atomic.AtomicLong injected = new java.util.concurrent.atomic.AtomicLong();
    private final java.util.concurrent.atomic.AtomicLong[] eventCounts = new java.util.concurrent.atomic.AtomicLong[BlkDebugEvent.values().length];

    private DebugDriver(BlockChild file, int align, long maxTransfer, boolean powerLoss) {
        this.file = file;
        this.align = align;
        this.maxTransfer = maxTransfer;
        this.journal = powerLoss ? new UnflushedWrites(file.node()) : null;
        for (int i = 0; i < eventCounts.length; i++) {
            eventCounts[i] = new java.util.concurrent.atomic.AtomicLong();
        }
    }

    @Override
    public String driverName() {
        return "debug";
    }

    // ------------------------------------------------------------------ the test API

    /** Adds an inject-error rule. */
    public void addRule(Rule r) {
        lock.lock();
        try {
            rules.add(r);
            anyRules = true;
        } finally {
            lock.unlock();
        }
    }

    /** Shorthand: fail the next matching I/O after {@code event} with {@code errno}, once or always. */
    public void injectError(BlkDebugEvent event, int errno, boolean once) {
        addRule(new Rule(event, errno, once, true, -1, IO_DEFAULT));
    }

    /** Removes every inject-error rule, active or not. */
    public void clearRules() {
        lock.lock();
        try {
            rules.clear();
            active.clear();
            anyRules = !breakpoints.isEmpty();
        } finally {
            lock.unlock();
        }
    }

    /** blkdebug "break": suspend the first request that fires {@code event}, under {@code tag}. */
    public void breakAt(BlkDebugEvent event, String tag) {
        lock.lock();
        try {
            breakpoints.add(new Breakpoint(event, tag));
            anyRules = true;
        } finally {
            lock.unlock();
        }
    }

    /** blkdebug "remove_break": drops breakpoints with the tag and resumes requests suspended under it. */
    public boolean removeBreak(String tag) {
        boolean found;
        lock.lock();
        try {
            found = breakpoints.removeIf(b -> b.tag.equals(tag));
            anyRules = !rules.isEmpty() || !breakpoints.isEmpty();
        } finally {
            lock.unlock();
        }
        return resume(tag) || found;
    }

    /** True if a request is suspended under {@code tag} now (blkdebug "wait_break" without waiting). */
    public boolean isSuspended(String tag) {
        lock.lock();
        try {
            for (Suspended s : suspended) {
                if (s.tag.equals(tag)) return true;
            }
            return false;
        } finally {
            lock.unlock();
        }
    }

    /** Blocks the calling thread (not an I/O thread) until a request is suspended under {@code tag}. */
    public boolean waitBreak(String tag, long timeout, TimeUnit unit) throws InterruptedException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        lock.lock();
        try {
            while (!isSuspendedLocked(tag)) {
                long left = deadline - System.nanoTime();
                if (left <= 0) return false;
                suspendedChanged.awaitNanos(left);
            }
            return true;
        } finally {
            lock.unlock();
        }
    }

    private boolean isSuspendedLocked(String tag) {
        for (Suspended s : suspended) {
            if (s.tag.equals(tag)) return true;
        }
        return false;
    }

    /** blkdebug "resume": lets every request suspended under {@code tag} continue. Any thread. */
    public boolean resume(String tag) {
        List<Suspended> go = new ArrayList<>();
        lock.lock();
        try {
            for (Iterator<Suspended> it = suspended.iterator(); it.hasNext(); ) {
                Suspended s = it.next();
                if (s.tag.equals(tag)) {
                    it.remove();
                    s.released = true;
                    go.add(s);
                }
            }
            suspendedChanged.signalAll();
        } finally {
            lock.unlock();
        }
        for (Suspended s : go) {
            if (s.waiter instanceof Coroutine c) c.wake();
            else LockSupport.unpark((Thread) s.waiter);
        }
        return !go.isEmpty();
    }

    /** Drops every write that was not flushed (power-loss=on only); returns the number of pages lost. */
    public int crash() {
        if (journal == null) throw new IllegalStateException("debug: crash() needs power-loss=on");
        return journal.crash();
    }

    /** Pages written but not flushed yet (power-loss=on). */
    public int unflushedPages() {
        return journal == null ? 0 : journal.pendingPages();
    }

    /** How often {@code ev} fired on this node. */
    public long eventCount(BlkDebugEvent ev) {
        return eventCounts[ev.ordinal()].get();
    }

    /** How many errors were injected so far. */
    public long injectedErrors() {
        return injected.get();
    }

    // ------------------------------------------------------------------ events and rule checks

    @Override
    public void debugEvent(BlkDebugEvent ev) {
        eventCounts[ev.ordinal()].incrementAndGet();
        if (!anyRules) return;
        Suspended me = null;
        lock.lock();
        try {
            boolean cleared = false;
            for (Rule r : rules) {
                if (r.event == ev) {
                    if (!cleared) {
                        active.clear();
                        cleared = true;
                    }
                    active.add(0, r);
                }
            }
            for (Iterator<Breakpoint> it = breakpoints.iterator(); it.hasNext(); ) {
                Breakpoint b = it.next();
                if (b.event == ev) {
                    it.remove();
                    Coroutine co = Coroutine.current();
                    me = new Suspended(b.tag, co != null ? co : Thread.currentThread());
                    suspended.add(me);
                    suspendedChanged.signalAll();
                    break;
                }
            }
            anyRules = !rules.isEmpty() || !breakpoints.isEmpty();
        } finally {
            lock.unlock();
        }
        if (me != null) {
            while (!me.released) {
                if (me.waiter instanceof Coroutine) Coroutine.park();
                else LockSupport.park(this);
            }
        }
    }

    /** blkdebug's rule_check: 0, or the negative errno of the first active rule matching this I/O. */
    private int ruleCheck(long offset, long bytes, int iotype) {
        if (!anyRules) return 0;
        Rule hit = null;
        lock.lock();
        try {
            for (Rule r : active) {
                if ((r.offset == -1 || (bytes > 0 && r.offset >= offset && r.offset < offset + bytes)) && (r.iotypes & iotype) != 0) {
                    hit = r;
                    break;
                }
            }
            if (hit == null) return 0;
            if (hit.once) {
                active.remove(hit);
                rules.remove(hit);
                anyRules = !rules.isEmpty() || !breakpoints.isEmpty();
            }
        } finally {
            lock.unlock();
        }
        injected.incrementAndGet();
        if (!hit.immediately && Coroutine.inCoroutine()) {
            Coroutine.yieldNow();
        }
        return -hit.errno;
    }

    // ------------------------------------------------------------------ pass-through I/O

    @Override
    public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        int r = ruleCheck(offset, bytes, IO_READ);
        if (r < 0) return r;
        if (journal != null) return journal.read(offset, bytes, qiov, qiovOffset);
        return file.node().preadv(offset, bytes, qiov, qiovOffset, flags);
    }

    @Override
    public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        int r = ruleCheck(offset, bytes, IO_WRITE);
        if (r < 0) return r;
        if (journal != null) return journal.write(offset, bytes, qiov, qiovOffset);
        return file.node().pwritev(offset, bytes, qiov, qiovOffset, flags);
    }

    @Override
    public int coPwriteZeroes(long offset, long bytes, int flags) {
        int r = ruleCheck(offset, bytes, IO_WRITE_ZEROES);
        if (r < 0) return r;
        if (journal != null) return journal.write(offset, bytes, null, 0);
        return file.node().pwriteZeroes(offset, bytes, flags);
    }

    @Override
    public int coPdiscard(long offset, long bytes) {
        int r = ruleCheck(offset, bytes, IO_DISCARD);
        if (r < 0) return r;
        if (journal != null) return journal.write(offset, bytes, null, 0);
        return file.node().pdiscard(offset, bytes);
    }

    @Override
    public int coFlushToOs() {
        return ruleCheck(0, 0, IO_FLUSH);
    }

    @Override
    public int coFlushToDisk() {
        int r = ruleCheck(0, 0, IO_FLUSH);
        if (r < 0) return r;
        return journal == null ? 0 : journal.commit();
    }

    @Override
    public boolean hasFlushToDisk() {
        return true;
    }

    @Override
    public long getLength() {
        long len = file.node().getLength();
        // with power-loss=on, writes past the end wait in the overlay: the node is already that long
        return journal == null || len < 0 ? len : Math.max(len, journal.pendingEnd());
    }

    @Override
    public int coTruncate(long offset, boolean exact, PreallocMode prealloc, int flags) {
        return file.node().truncate(offset, exact, prealloc, flags);
    }

    @Override
    public void refreshLimits(BlockLimits l) {
        if (align > 0) l.requestAlignment = Math.max(l.requestAlignment, align);
        l.maxTransfer = BlockLimits.minNonZero(l.maxTransfer, maxTransfer);
    }

    @Override
    public int supportedWriteFlags() {
        return journal == null ? RequestFlags.FUA : 0;
    }

    @Override
    public int supportedZeroFlags() {
        return journal == null ? RequestFlags.FUA | RequestFlags.MAY_UNMAP | RequestFlags.NO_FALLBACK : RequestFlags.MAY_UNMAP;
    }

    @Override
    public boolean hasZeroInit() {
        return file.node().driver().hasZeroInit();
    }

    @Override
    public int clusterSize() {
        return file.node().driver().clusterSize();
    }

    @Override
    public int coBlockStatus(boolean wantZero, long offset, long bytes, BlockStatus out) {
        int r = ruleCheck(offset, bytes, IO_BLOCK_STATUS);
        if (r < 0) return r;
        r = file.node().blockStatus(wantZero, offset, bytes, out);
        if (r >= 0) out.status |= BlockStatus.ALLOCATED;
        return r;
    }

    @Override
    public void close() {
        if (journal != null) journal.close();
    }
}
