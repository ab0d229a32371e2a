package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class LatencyHistogramTest {
    @Test
    void bucketsAreContiguousAndContainTheirValues() {
        for (int i = 0; i < 2000; i++) {
            long lo = LatencyHistogram.lowerBound(i);
            long w = LatencyHistogram.width(i);
            assertEquals(i, LatencyHistogram.index(lo), "lower bound of " + i);
            assertEquals(i, LatencyHistogram.index(lo + w - 1), "upper end of " + i);
            assertEquals(i + 1, LatencyHistogram.index(lo + w), "next after " + i);
            if (lo > Long.MAX_VALUE / 4) break;
        }
    }

    @Test
    void percentilesAreWithinThreePercentOfExact() {
        SplittableRandom r = new SplittableRandom(1);
        long[] v = new long[100_000];
        LatencyHistogram h = new LatencyHistogram();
        for (int i = 0; i < v.length; i++) {
            v[i] = 1000 + (long) (-Math.log(1 - r.nextDouble()) * 50_000);   // exponential, ns
            h.record(v[i]);
        }
        Arrays.sort(v);
        for (double q : new double[] {0.5, 0.99, 0.999}) {
            long exact = v[(int) Math.ceil(q * v.length) - 1];
            long got = h.percentile(q);
            assertTrue(Math.abs(got - exact) <= exact * 0.03, q + ": " + got + " vs " + exact);
        }
        assertEquals(v.length, h.count());
        assertEquals(v[v.length - 1], h.max());
    }

    @Test
    void smallValuesAreExactAndEmptyIsZero() {
        LatencyHistogram h = new LatencyHistogram();
        assertEquals(0, h.percentile(0.5));
        h.record(3);
        h.record(5);
        h.record(40);
        assertEquals(5, h.percentile(0.5));
        assertEquals(40, h.percentile(1.0));
    }
}
