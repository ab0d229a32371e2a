package io.vblk.block;

import java.util.BitSet;

/**
 * A dirty bitmap: which granules of a node were written (QEMU's BdrvDirtyBitmap). A read-only
 * bitmap refuses writes to the node with EPERM, as QEMU does for bitmaps being exported.
 */
public final class DirtyBitmap {
    private final String name;
    private final long granularity;
    private final BitSet bits = new BitSet();   // guarded by this
    private volatile boolean readOnly;

    public DirtyBitmap(String name, long granularity) {
        if (Long.bitCount(granularity) != 1) throw new IllegalArgumentException("granularity must be a power of two");
        this.name = name;
        this.granularity = granularity;
    }

    public String name() { return name; }
    public long granularity() { return granularity; }
    public boolean isReadOnly() { return readOnly; }
    public void setReadOnly(boolean ro) { readOnly = ro; }

    public synchronized void setDirty(long offset, long bytes) {
        if (bytes <= 0) return;
        long first = offset / granularity;
        long last = (offset + bytes - 1) / granularity;
        bits.set((int) first, (int) last + 1);
    }

    public synchronized boolean isDirty(long offset) {
        return bits.get((int) (offset / granularity));
    }

    public synchronized long dirtyCount() {
        return bits.cardinality();
    }

    public synchronized void clear() {
        bits.clear();
    }
}
