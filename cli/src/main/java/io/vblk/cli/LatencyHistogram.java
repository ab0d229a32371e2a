package io.vblk.cli;

/**
 * Request latencies for {@code vblk bench}: a fixed log-linear histogram (32 sub-buckets per power
 * of two, so any percentile is within about 3% of the true value) that records without allocating,
 * so that measuring does not disturb the run. Values are nanoseconds. Not thread-safe: one I/O
 * thread records.
 */
public final class LatencyHistogram {
    static final int SUB_BITS = 5;
    static final int SUB = 1 << SUB_BITS;
    /** Values below this are counted exactly. */
    static final int LINEAR = 2 * SUB;
    private static final int BUCKETS = LINEAR + (63 - (SUB_BITS + 1)) * SUB;

    private final long[] counts = new long[BUCKETS];
    private long total;
    private long max;

    static int index(long v) {
        if (v < LINEAR) {
            return (int) Math.max(v, 0);
        }
        int e = 63 - Long.numberOfLeadingZeros(v);          // >= SUB_BITS + 1
        int sub = (int) ((v >>> (e - SUB_BITS)) & (SUB - 1));
        return LINEAR + (e - SUB_BITS - 1) * SUB + sub;
    }

    /** Smallest value that falls in bucket {@code i}. */
    static long lowerBound(int i) {
        if (i < LINEAR) {
            return i;
        }
        int e = (i - LINEAR) / SUB + SUB_BITS + 1;
        int sub = (i - LINEAR) % SUB;
        return (1L << e) + ((long) sub << (e - SUB_BITS));
    }

    static long width(int i) {
        return i < LINEAR ? 1 : 1L << ((i - LINEAR) / SUB + 1);
    }

    public void record(long nanos) {
        counts[index(nanos)]++;
        total++;
        if (nanos > max) max = nanos;
    }

    public long count() {
        return total;
    }

    public long max() {
        return max;
    }

    /**
     * The value at quantile {@code q} (0..1]: the middle of the bucket holding the
     * ceil(q * count)-th smallest value, or 0 when nothing was recorded.
     */
    public long percentile(double q) {
        if (total == 0) return 0;
        long rank = Math.max(1, (long) Math.ceil(q * total));
        long seen = 0;
        for (int i = 0; i < counts.length; i++) {
            seen += counts[i];
            if (seen >= rank) {
                long mid = lowerBound(i) + (width(i) - 1) / 2;
                return Math.min(mid, max);
            }
        }
        return max;
    }
}
