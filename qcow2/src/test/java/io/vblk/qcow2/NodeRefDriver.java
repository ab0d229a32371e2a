package io.vblk.qcow2;

import io.vblk.block.BlockDriver;
import io.vblk.block.BlockDriverFactory;
import io.vblk.block.BlockDrivers;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLimits;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.PreallocMode;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Test-only protocol driver {@code noderef}: forwards every request to an existing node registered
 * under an id (option {@code id}), so a qcow2 node can be opened, closed and reopened over the same
 * {@code memory} node. Closing it does not close the target.
 */
public final class NodeRefDriver extends BlockDriver {
    private static final Map<String, BlockNode> NODES = new ConcurrentHashMap<>();
    private static final AtomicInteger IDS = new AtomicInteger();

    static {
        BlockDrivers.register(new BlockDriverFactory() {
            @Override
            public String name() {
                return "noderef";
            }

            @Override
            public BlockDriver open(BlockNode node, BlockOptions o) throws BlockException {
                String id = o.remove("id");
                BlockNode t = id == null ? null : NODES.get(id);
                if (t == null) throw new BlockException(Errno.ENOENT, "noderef: no node '" + id + "'");
                String y = o.remove("yield");
                NodeRefDriver d = new NodeRefDriver(t, "on".equals(y));
                d.volatileCache = "on".equals(o.remove("volatile-cache"));
                String ev = o.remove("inject-event");
                if (ev != null) {
                    d.injectEvent = io.vblk.block.BlkDebugEvent.parse(ev);
                    d.injectErrno = Integer.parseInt(o.get("inject-errno", "5"));
                    o.remove("inject-errno");
                }
                return d;
            }
        });
    }

    /** Registers {@code n} and returns its id (native-tests use this class through the qcow2 test-jar). */
    public static String register(BlockNode n) {
        String id = "n" + IDS.incrementAndGet();
        NODES.put(id, n);
        return id;
    }

    private final BlockNode t;

    private final boolean yield;

    private NodeRefDriver(BlockNode t, boolean yield) {
        this.t = t;
        this.yield = yield;
    }

    // blkdebug-like error injection (inject-event, inject-errno, once): the first request after the event fails
    io.vblk.block.BlkDebugEvent injectEvent;
    int injectErrno;
    volatile boolean armed;
    volatile int injected;

    @Override
    public void debugEvent(io.vblk.block.BlkDebugEvent ev) {
        if (ev == injectEvent && injected == 0) armed = true;
    }

    private int fault() {
        if (armed) {
            armed = false;
            injected++;
            return -injectErrno;
        }
        return 0;
    }

    // volatile-cache=on: writes stay in a volatile write cache until a flush (like a disk cache);
    // crash(r) persists a random subset of them, in random order, and forgets the rest
    boolean volatileCache;
    private final java.util.List<Object[]> pending = new java.util.ArrayList<>(); // {Long offset, byte[] data}; guarded by this

    private synchronized void addPending(long off, byte[] d) {
        pending.add(new Object[] {off, d});
    }

    private synchronized void overlay(long off, long len, IoVector q, long qo) {
        for (Object[] p : pending) {
            long po = (Long) p[0];
            byte[] d = (byte[]) p[1];
            long s0 = Math.max(off, po), e0 = Math.min(off + len, po + d.length);
            if (s0 < e0) q.copyFromArray(qo + (s0 - off), d, (int) (s0 - po), (int) (e0 - s0));
        }
    }

    private synchronized int drain() {
        for (Object[] p : pending) {
            byte[] d = (byte[]) p[1];
            try (io.vblk.block.NativeBuffer b = io.vblk.block.NativeBuffer.allocate(Math.max(1, d.length), 4096)) {
                b.copyFrom(d, 0, 0, d.length);
                int r = t.pwritev((Long) p[0], d.length, IoVector.of(b.address(), d.length), 0, 0);
                if (r < 0) return r;
            }
        }
        pending.clear();
        return 0;
    }

    /** Simulated power loss: a random subset of the unflushed writes reaches the disk, in random order. */
    synchronized int crash(java.util.Random r) {
        java.util.Collections.shuffle(pending, r);
        pending.removeIf(p -> r.nextBoolean());
        int n = pending.size();
        drain();
        return n;
    }

    /** With yield=on every request first yields, so concurrent coroutines interleave as with real I/O. */
    private void maybeYield() {
        if (yield && io.vblk.block.Coroutine.current() != null) io.vblk.block.Coroutine.yieldNow();
    }

    @Override public String driverName() { return "noderef"; }
    @Override public int coPreadv(long o, long b, IoVector q, long qo, int f) {
        maybeYield();
        int e = fault();
        if (e < 0) return e;
        int r = t.preadv(o, b, q, qo, f);
        if (r >= 0 && volatileCache) overlay(o, b, q, qo);
        return r;
    }
    @Override public int coPwritev(long o, long b, IoVector q, long qo, int f) {
        maybeYield();
        int e = fault();
        if (e < 0) return e;
        if (volatileCache) {
            if (o + b > t.getLength()) return -io.vblk.block.Errno.ENOSPC;
            byte[] d = new byte[(int) b];
            q.copyToArray(qo, d, 0, (int) b);
            addPending(o, d);
            return 0;
        }
        return t.pwritev(o, b, q, qo, f);
    }
    @Override public int coPwriteZeroes(long o, long b, int f) {
        if (volatileCache) {
            addPending(o, new byte[(int) b]);
            return 0;
        }
        return t.pwriteZeroes(o, b, f);
    }
    @Override public int coPdiscard(long o, long b) {
        if (volatileCache) return 0;
        return t.pdiscard(o, b);
    }
    @Override public int coFlushToOs() {
        maybeYield();
        int e = fault();
        if (e < 0) return e;
        if (volatileCache) {
            int r = drain();
            if (r < 0) return r;
        }
        return t.flush();
    }
    @Override public long getLength() { return t.getLength(); }
    @Override public int coTruncate(long o, boolean e, PreallocMode p, int f) { return t.truncate(o, e, p, f); }
    @Override public int supportedWriteFlags() { return t.driver().supportedWriteFlags(); }
    @Override public int supportedZeroFlags() { return t.driver().supportedZeroFlags(); }
    @Override public void refreshLimits(BlockLimits l) { t.driver().refreshLimits(l); }
}
