package io.vblk.qcow2;

import io.vblk.block.BlkDebugEvent;
import io.vblk.block.BlockNode;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;

/**
 * A metadata cache of fixed-size table pieces (L2 slices or refcount blocks) over one aligned
 * native buffer: QEMU's Qcow2Cache (block/qcow2-cache.c). Entries carry {offset, lru counter,
 * reference count, dirty}; a miss evicts the least recently released unreferenced entry, writing
 * it first if dirty (after its dependency). A cache may depend on another cache
 * ({@link #setDependency}, qcow2_cache_set_dependency: the other cache is flushed before any entry
 * of this one is written) or on a flush of the file ({@link #dependsOnFlush}).
 *
 * <p>All methods must be called with the driver's {@code lock} held; every field is guarded by it.
 */
final class Qcow2Cache {
    final String name;
    private final Qcow2Driver s;
    private final BlkDebugEvent loadEvent;
    private final BlkDebugEvent writeEvent;
    final int entrySize;
    final int size;                      // number of entries
    private final NativeBuffer mem;
    private final long[] offsets;        // 0 = free slot
    private final long[] lru;
    private final int[] refs;
    private final boolean[] dirty;
    private final Qcow2CacheIndex index;
    private long lruCounter;
    private Qcow2Cache depends;          // must be flushed before our entries are written
    private boolean dependsOnFlush;      // the file must be flushed before our entries are written

    Qcow2Cache(String name, Qcow2Driver s, int entries, int entrySize, BlkDebugEvent loadEvent, BlkDebugEvent writeEvent) {
        this.name = name;
        this.s = s;
        this.size = entries;
        this.entrySize = entrySize;
        this.loadEvent = loadEvent;
        this.writeEvent = writeEvent;
        this.mem = NativeBuffer.allocate((long) entries * entrySize, 4096);
        this.offsets = new long[entries];
        this.lru = new long[entries];
        this.refs = new int[entries];
        this.dirty = new boolean[entries];
        this.index = new Qcow2CacheIndex(entries);
    }

    long address(int slot) {
        return mem.address() + (long) slot * entrySize;
    }

    long offset(int slot) {
        return offsets[slot];
    }

    /** qcow2_cache_get: the slot holding the table piece at {@code offset}, read on a miss; or -errno. */
    int get(long offset) {
        return doGet(offset, true);
    }

    /** qcow2_cache_get_empty: a slot for a new table piece at {@code offset}, not read (the caller fills it). */
    int getEmpty(long offset) {
        return doGet(offset, false);
    }

    private int doGet(long offset, boolean read) {
        int hit = index.get(offset);
        if (hit >= 0) {
            refs[hit]++;
            return hit;
        }
        int victim = -1;
        long best = Long.MAX_VALUE;
        for (int i = 0; i < size; i++) {
            if (refs[i] != 0) continue;
            if (offsets[i] == 0) {
                victim = i;
                break;
            }
            if (lru[i] < best) {
                best = lru[i];
                victim = i;
            }
        }
        if (victim < 0) return -Errno.ENOSPC; // every entry is in use: cannot happen with >= 2 entries
        if (offsets[victim] != 0) {
            int ret = writeEntry(victim);
            if (ret < 0) return ret;
            index.remove(offsets[victim]);
            offsets[victim] = 0;
        }
        if (read) {
            s.file.event(loadEvent);
            int ret = s.file.preadv(offset, entrySize, IoVector.of(address(victim), entrySize), 0, 0);
            if (ret < 0) return ret;
        }
        offsets[victim] = offset;
        index.put(offset, victim);
        refs[victim] = 1;
        return victim;
    }

    /** qcow2_cache_put. */
    void put(int slot) {
        refs[slot]--;
        lru[slot] = ++lruCounter;
    }

    /** qcow2_cache_entry_mark_dirty. */
    void markDirty(int slot) {
        dirty[slot] = true;
    }

    /** qcow2_cache_set_dependency: entries of {@code dep} must reach disk before ours. No chains. */
    int setDependency(Qcow2Cache dep) {
        if (dep.depends != null) {
            int ret = dep.flushDependency();
            if (ret < 0) return ret;
        }
        if (depends != null && depends != dep) {
            int ret = flushDependency();
            if (ret < 0) return ret;
        }
        depends = dep;
        return 0;
    }

    /** qcow2_cache_depends_on_flush: the file must be flushed before our next entry write. */
    void dependsOnFlush() {
        dependsOnFlush = true;
    }

    private int flushDependency() {
        int ret = depends.flush();
        if (ret < 0) return ret;
        depends = null;
        dependsOnFlush = false;
        return 0;
    }

    /** qcow2_cache_entry_flush: writes one dirty entry after its dependencies. */
    private int writeEntry(int i) {
        if (!dirty[i] || offsets[i] == 0) return 0;
        int ret;
        if (depends != null) {
            ret = flushDependency();
        } else if (dependsOnFlush) {
            ret = s.file.flush();
            if (ret >= 0) dependsOnFlush = false;
        } else {
            ret = 0;
        }
        if (ret < 0) return ret;
        ret = s.overlap.checkMetadataWrite(this, offsets[i], entrySize);
        if (ret < 0) return ret;
        s.file.event(writeEvent);
        ret = s.file.pwritev(offsets[i], entrySize, IoVector.of(address(i), entrySize), 0, 0);
        if (ret < 0) return ret;
        dirty[i] = false;
        return 0;
    }

    /** qcow2_cache_write: writes every dirty entry (no file flush). */
    int write() {
        int result = 0;
        for (int i = 0; i < size; i++) {
            int ret = writeEntry(i);
            if (ret < 0 && result == 0) result = ret;
        }
        return result;
    }

    /** qcow2_cache_flush: writes every dirty entry, then flushes the file. */
    int flush() {
        int ret = write();
        int r2 = s.file.flush();
        return ret < 0 ? ret : r2;
    }

    boolean anyDirty() {
        for (int i = 0; i < size; i++) {
            if (dirty[i] && offsets[i] != 0) return true;
        }
        return false;
    }

    /**
     * qcow2_cache_discard for a freed cluster: drops the cached pieces of the host cluster at
     * {@code clusterOffset}, dirty or not, so a stale entry is never written over a reused cluster.
     */
    void discardCluster(long clusterOffset, int clusterSize) {
        for (long o = clusterOffset; o < clusterOffset + clusterSize; o += entrySize) {
            int i = index.get(o);
            if (i >= 0 && refs[i] == 0) {
                index.remove(o);
                offsets[i] = 0;
                dirty[i] = false;
            }
        }
    }

    /** qcow2_cache_empty after a failed load or on close: forgets clean entries. */
    void clear() {
        for (int i = 0; i < size; i++) {
            if (refs[i] == 0 && !dirty[i] && offsets[i] != 0) {
                index.remove(offsets[i]);
                offsets[i] = 0;
            }
        }
    }

    /** Number of slots holding a table piece (qcow2_cache statistics; at most {@link #size}). */
    int used() {
        int n = 0;
        for (int i = 0; i < size; i++) {
            if (offsets[i] != 0) n++;
        }
        return n;
    }

    /** True if the piece at {@code offset} is cached (tests). */
    boolean contains(long offset) {
        return index.get(offset) >= 0;
    }

    void close() {
        mem.close();
    }
}
