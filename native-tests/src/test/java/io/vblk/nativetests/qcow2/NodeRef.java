package io.vblk.nativetests.qcow2;

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
 * Test-only protocol driver {@code noderef-nt}: forwards requests to a registered node (a memory
 * node holding an image file's bytes) so qcow2 can be opened, closed and reopened over it while the
 * {@code file} driver is developed on another branch. Closing it leaves the target open.
 */
final class NodeRef extends BlockDriver {
    private static final Map<String, BlockNode> NODES = new ConcurrentHashMap<>();
    private static final AtomicInteger IDS = new AtomicInteger();

    static {
        BlockDrivers.register(new BlockDriverFactory() {
            @Override
            public String name() {
                return "noderef-nt";
            }

            @Override
            public BlockDriver open(BlockNode node, BlockOptions o) throws BlockException {
                BlockNode t = NODES.get(String.valueOf(o.remove("id")));
                if (t == null) throw new BlockException(Errno.ENOENT, "noderef-nt: unknown node");
                boolean y = "on".equals(o.remove("yield"));
                return new NodeRef(t, y);
            }
        });
    }

    static String register(BlockNode n) {
        String id = "m" + IDS.incrementAndGet();
        NODES.put(id, n);
        return id;
    }

    private final BlockNode t;
    private final boolean yield;

    private NodeRef(BlockNode t, boolean yield) {
        this.t = t;
        this.yield = yield;
    }

    private void y() {
        if (yield && io.vblk.block.Coroutine.current() != null) io.vblk.block.Coroutine.yieldNow();
    }

    @Override public String driverName() { return "noderef-nt"; }
    @Override public int coPreadv(long o, long b, IoVector q, long qo, int f) { y(); return t.preadv(o, b, q, qo, f); }
    @Override public int coPwritev(long o, long b, IoVector q, long qo, int f) { y(); return t.pwritev(o, b, q, qo, f); }
    @Override public int coPwriteZeroes(long o, long b, int f) { return t.pwriteZeroes(o, b, f); }
    @Override public int coPdiscard(long o, long b) { return t.pdiscard(o, b); }
    @Override public int coFlushToOs() { y(); return t.flush(); }
    @Override public long getLength() { return t.getLength(); }
    @Override public int coTruncate(long o, boolean e, PreallocMode p, int f) { return t.truncate(o, e, p, f); }
    @Override public int supportedZeroFlags() { return t.driver().supportedZeroFlags(); }
    @Override public void refreshLimits(BlockLimits l) { t.driver().refreshLimits(l); }
}
