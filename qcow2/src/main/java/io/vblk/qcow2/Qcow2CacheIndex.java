package io.vblk.qcow2;

/**
 * Offset-to-slot index of a {@link Qcow2Cache}: an open-addressing hash table of primitive longs
 * (linear probing, backward-shift deletion), so cache lookups on the request path neither box nor
 * allocate. Offsets are never 0 (cluster 0 is the header), so 0 marks an empty bucket. Guarded by
 * the driver lock, like the cache.
 */
final class Qcow2CacheIndex {
    private final long[] keys;
    private final int[] values;
    private final int mask;

    Qcow2CacheIndex(int entries) {
        int cap = Integer.highestOneBit(Math.max(4, entries * 2 - 1)) << 1;
        keys = new long[cap];
        values = new int[cap];
        mask = cap - 1;
    }

    private int home(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h >>> 40) & mask;
    }

    /** The slot for {@code key}, or -1. */
    int get(long key) {
        for (int i = home(key);; i = (i + 1) & mask) {
            long k = keys[i];
            if (k == key) return values[i];
            if (k == 0) return -1;
        }
    }

    void put(long key, int value) {
        for (int i = home(key);; i = (i + 1) & mask) {
            long k = keys[i];
            if (k == 0 || k == key) {
                keys[i] = key;
                values[i] = value;
                return;
            }
        }
    }

    void remove(long key) {
        int i = home(key);
        while (true) {
            long k = keys[i];
            if (k == 0) return;
            if (k == key) break;
            i = (i + 1) & mask;
        }
        // backward-shift deletion keeps every probe chain unbroken
        int hole = i;
        for (int j = (hole + 1) & mask;; j = (j + 1) & mask) {
            long k = keys[j];
            if (k == 0) break;
            int h = home(k);
            boolean movable = hole <= j ? (h <= hole || h > j) : (h <= hole && h > j);
            if (movable) {
                keys[hole] = k;
                values[hole] = values[j];
                hole = j;
            }
        }
        keys[hole] = 0;
    }
}
