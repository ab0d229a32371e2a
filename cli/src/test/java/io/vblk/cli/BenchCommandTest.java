package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioStats;
import io.vblk.block.AioContext;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class BenchCommandTest {
    /** A path that records offsets and fails at a chosen one. */
    static final class FakePath implements BenchPath {
        final AioContext ctx = AioContext.start("fake-bench");
        final long length;
        final long failAt;
        final List<Long> offsets = new ArrayList<>();
        final List<Integer> inFlightAtFlush = new ArrayList<>();
        int flushes;
        int maxInFlight;
        int inFlight;

        FakePath(long length, long failAt) {
            this.length = length;
            this.failAt = failAt;
        }

        @Override public AioContext context() { return ctx; }
        @Override public long length() { return length; }
        @Override public int flush() {
            flushes++;
            inFlightAtFlush.add(inFlight);
            io.vblk.block.Coroutine.yieldNow();
            return 0;
        }
        @Override public int request(boolean write, long offset, IoVector qiov) {
            offsets.add(offset);
            inFlight++;
            maxInFlight = Math.max(maxInFlight, inFlight);
            io.vblk.block.Coroutine.yieldNow();   // let the other workers in, like a real request would
            inFlight--;
            return offset == failAt ? -Errno.EIO : BackendRange.check(length, offset, qiov.size());
        }
        @Override public AioStats aioStats() { return null; }
        @Override public void close() { ctx.close(); }
    }

    private static BenchCommand.Config cfg(long count, int depth, int size, long step, long offset, boolean random) {
        return new BenchCommand.Config(false, count, depth, size, step, offset, random, 0, 0, "block", false, true);
    }

    @Test
    void sequentialOffsetsStepAndWrapAtTheEndOfTheImage() {
        try (FakePath p = new FakePath(16384, -1)) {
            BenchCommand.Result r = BenchCommand.runBench(cfg(6, 1, 4096, 4096, 8192, false), p);
            assertEquals(0, r.error());
            assertEquals(6, r.ops());
            assertEquals(List.of(8192L, 12288L, 0L, 4096L, 8192L, 12288L), p.offsets);
        }
    }

    @Test
    void warmupRequestsRunFirstAndAreNotCounted() {
        try (FakePath p = new FakePath(1 << 20, -1)) {
            BenchCommand.Result r = BenchCommand.runBench(cfg(100, 4, 512, 512, 0, false), p, 40);
            assertEquals(0, r.error());
            assertEquals(100, r.ops(), "the timed phase counts its own requests only");
            assertEquals(100, r.lat().count());
            assertEquals(140, p.offsets.size(), "40 warm-up requests went to the path before the timed 100");
            assertEquals(0L, p.offsets.get(0));
            assertEquals(40L * 512, p.offsets.get(40), "the timed phase continues the sequence");
        }
    }

    @Test
    void aFailingWarmupIsReported() {
        try (FakePath p = new FakePath(1 << 20, 3 * 512)) {
            BenchCommand.Result r = BenchCommand.runBench(cfg(100, 2, 512, 512, 0, false), p, 10);
            assertEquals(-Errno.EIO, r.error());
            assertEquals(0, r.ops());
        }
    }

    @Test
    void keepsDepthRequestsInFlight() {
        try (FakePath p = new FakePath(1 << 20, -1)) {
            BenchCommand.Result r = BenchCommand.runBench(cfg(1000, 8, 512, 512, 0, false), p);
            assertEquals(1000, r.ops());
            assertEquals(8, p.maxInFlight);
            assertEquals(1000, new HashSet<>(p.offsets).size(), "1000 sequential requests over 2048 slots never repeat");
            assertEquals(1000, r.lat().count());
        }
    }

    @Test
    void flushIntervalDrainsFirstUnlessNoDrain() {
        for (boolean drain : new boolean[] {true, false}) {
            try (FakePath p = new FakePath(1 << 20, -1)) {
                BenchCommand.Config c = new BenchCommand.Config(true, 1000, 8, 512, 512, 0, false, 0, 100, "block", false, drain);
                BenchCommand.Result r = BenchCommand.runBench(c, p);
                assertEquals(1000, r.ops());
                assertEquals(9, p.flushes, "a flush after each 100 issued requests but the last");
                if (drain) {
                    assertTrue(p.inFlightAtFlush.stream().allMatch(n -> n == 0), "drained: " + p.inFlightAtFlush);
                } else {
                    assertTrue(p.inFlightAtFlush.stream().anyMatch(n -> n > 0), "not drained: " + p.inFlightAtFlush);
                }
            }
        }
    }

    @Test
    void randomOffsetsAreAlignedAndInRange() {
        try (FakePath p = new FakePath(1 << 20, -1)) {
            BenchCommand.runBench(cfg(5000, 4, 4096, 4096, 64 * 1024, true), p);
            Set<Long> distinct = new HashSet<>(p.offsets);
            for (long o : p.offsets) {
                assertEquals(0, (o - 64 * 1024) % 4096, "aligned: " + o);
                assertTrue(o >= 64 * 1024 && o + 4096 <= (1 << 20), "in range: " + o);
            }
            assertTrue(distinct.size() > 200, "spread over the image: " + distinct.size());
        }
    }

    @Test
    void aFailedRequestStopsTheRunWithItsErrno() {
        try (FakePath p = new FakePath(1 << 20, 40960)) {
            BenchCommand.Result r = BenchCommand.runBench(cfg(100, 4, 4096, 4096, 0, false), p);
            assertEquals(-Errno.EIO, r.error());
            assertTrue(r.ops() < 100);
        }
    }

    @Test
    void nullDeviceRunPrintsQemuImgBenchLines() {
        CliRun r = CliRun.of("bench", "-f", "null", "-c", "2000", "-d", "16", "-s", "4k", "1G");
        assertEquals(0, r.rc(), r.err());
        String[] lines = r.out().split("\n");
        assertEquals(2, lines.length, r.out());
        assertEquals("Sending 2000 read requests, 4096 bytes each, 16 in parallel (starting at offset 0, step size 4096)", lines[0]);
        assertTrue(lines[1].matches("Run completed in \\d+\\.\\d{3} seconds\\."), lines[1]);
    }

    @Test
    void jsonOutputHasTheListedFields() {
        CliRun r = CliRun.of("bench", "-f", "memory", "-w", "-c", "3000", "-d", "8", "--random", "--output=json", "8M");
        assertEquals(0, r.rc(), r.err());
        String j = r.out().trim();
        for (String k : new String[] {"seconds", "ops", "iops", "mib_per_s", "p50", "p99", "p999", "cpu_s", "io_submit_calls", "iocbs"}) {
            assertTrue(Pattern.compile("\"" + k + "\": -?[0-9.]+").matcher(j).find(), k + " in " + j);
        }
        Matcher ops = Pattern.compile("\"ops\": (\\d+)").matcher(j);
        assertTrue(ops.find());
        assertEquals("3000", ops.group(1));
        assertTrue(j.startsWith("{") && j.endsWith("}"), j);
    }

    @Test
    void requestPastTheEndFailsLikeQemuImg() {
        CliRun r = CliRun.of("bench", "-f", "null", "-c", "10", "-o", "1M", "1M");
        assertEquals(1, r.rc());
        assertEquals("vblk: Failed request: Input/output error\n", r.err());
    }

    @Test
    void badArgumentsGetQemuImgMessages() {
        assertEquals("vblk: Invalid request count specified\n", CliRun.of("bench", "-c", "-5", "-f", "null", "1G").err());
        assertEquals("vblk: Invalid queue depth specified\n", CliRun.of("bench", "-d", "0", "-f", "null", "1G").err());
        assertEquals("vblk: Invalid step size specified\n", CliRun.of("bench", "-S", "x", "-f", "null", "1G").err());
        assertEquals("vblk: --flush-interval is only available in write tests\n",
                CliRun.of("bench", "--flush-interval=4", "-f", "null", "1G").err());
        assertTrue(CliRun.of("bench", "--bogus", "x").err().startsWith("vblk: unrecognized option '--bogus'\n"));
        assertEquals(1, CliRun.of("bench", "--path", "nowhere", "-f", "null", "1G").rc());
    }

    @Test
    void virtioPathIsDispatchedWhenBuiltIn() {
        CliRun v = CliRun.of("bench", "--path", "virtio", "-f", "null", "-c", "100", "-d", "4", "1G");
        if (Main.builtIn(new Main.Command("io.vblk.cli.VirtioBenchPath", ""))) {
            assertEquals(0, v.rc(), v.err());
            assertTrue(v.out().startsWith("Sending 100 read requests"), v.out());
        } else {
            assertEquals(1, v.rc());
            assertTrue(v.err().contains("--path virtio is not built in"), v.err());
        }
    }

    @Test
    void startLineForRandom() {
        assertEquals("Sending 5 write requests, 512 bytes each, 2 in parallel (random offsets from 0, aligned to 512)",
                BenchCommand.startLine(new BenchCommand.Config(true, 5, 2, 512, 512, 0, true, 0, 0, "block", false, true)));
    }
}
