package io.vblk.block;

import java.util.BitSet;

/**
 * A test-only format with a backing child: 4 KiB clusters, allocated on first write, unallocated
 * ones read from {@code backing}. Just enough of a qcow2-like driver to exercise copy-on-read.
 */
final class OverlayTestDriver extends BlockDriver {
    static final int CLUSTER = 4096;

    static final BlockDriverFactory FACTORY = new BlockDriverFactory() {
        @Override
        public String name() {
            return "overlay-test";
        }

        @Override
        public BlockDriver open(BlockNode node, BlockOptions o) throws BlockException {
            long size = Sizes.parse(o.remove("size"));
            BlockChild backing = node.openChild("backing", BlockChild.Role.BACKING, true);
            return new OverlayTestDriver(size, backing);
        }
    };

    private final long size;
    private final BlockChild backing;
    private final NativeBuffer data;
    private final BitSet allocated = new BitSet();
    int backingReads;

    private OverlayTestDriver(long size, BlockChild backing) {
        this.size = size;
        this.backing = backing;
        this.data = NativeBuffer.allocate(size, 4096);
    }

    @Override
    public String driverName() {
        return "overlay-test";
    }

    boolean isAllocated(long offset) {
        return allocated.get((int) (offset / CLUSTER));
    }

    @Override
    public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        long pos = offset;
        while (pos < offset + bytes) {
            long n = Math.min(CLUSTER - pos % CLUSTER, offset + bytes - pos);
            if (isAllocated(pos)) {
                qiov.copyFromAddress(qiovOffset + pos - offset, data.address() + pos, n);
            } else {
                backingReads++;
                int r = backing.node().preadv(pos, n, qiov, qiovOffset + pos - offset, 0);
                if (r < 0) return r;
            }
            pos += n;
        }
        return 0;
    }

    @Override
    public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        qiov.copyToAddress(qiovOffset, data.address() + offset, bytes);
        allocated.set((int) (offset / CLUSTER), (int) ((offset + bytes + CLUSTER - 1) / CLUSTER));
        return 0;
    }

    @Override
    public long getLength() {
        return size;
    }

    @Override
    public int clusterSize() {
        return CLUSTER;
    }

    @Override
    public int coBlockStatus(boolean wantZero, long offset, long bytes, BlockStatus out) {
        boolean a = isAllocated(offset);
        long pos = offset;
        while (pos < offset + bytes && isAllocated(pos) == a) {
            pos = (pos / CLUSTER + 1) * CLUSTER;
        }
        out.set(a ? BlockStatus.ALLOCATED | BlockStatus.DATA : 0, Math.min(pos, offset + bytes) - offset, offset, null);
        return 0;
    }

    @Override
    public void close() {
        data.close();
    }
}
