package io.vblk.aio;

import static io.vblk.aio.AioTestSupport.patternBytes;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.NativeBuffer;
import io.vblk.block.RequestFlags;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Linux AIO engine for real: io_submit on an O_DIRECT file, batching, EAGAIN, ring reaping, short reads, FUA, FDSYNC. */
class LinuxAioTest {
    @TempDir Path dir;
    AioContext ctx;

    @BeforeEach
    void start() {
        ctx = IoThreads.start("aio-test");
    }

    @AfterEach
    void stop() {
        ctx.close();
    }

    private LinuxAio engine() {
        LinuxAio[] e = new LinuxAio[1];
        ctx.runOnThread(() -> e[0] = LinuxAio.of(ctx));
        return e[0];
    }

    private static void assertBlocks(NativeBuffer buf, int n) {
        byte[] got = new byte[4096 * n];
        buf.copyTo(0, got, 0, got.length);
        assertArrayEquals(patternBytes(0, got.length), got);
    }

    @Test
    void readWriteRoundTripReapsFromTheRing() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "a.img", 1 << 20);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native");
        try {
            byte[] data = patternBytes(12345, 65536);
            assertEquals(0, AioTestSupport.write(ctx, node, 65536, data, 0));
            assertArrayEquals(data, AioTestSupport.read(ctx, node, 65536, 65536));
            assertArrayEquals(patternBytes(0, 8192), AioTestSupport.read(ctx, node, 0, 8192));
            AioStats s = engine().stats();
            assertTrue(s.iocbsSubmitted >= 3, s.toString());
            assertTrue(s.ringCompletions > 0, "completions reaped from the ring: " + s);
            assertEquals(s.iocbsSubmitted, s.ringCompletions + s.syscallCompletions, s.toString());
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void busyPollingReapsCompletionsWithoutTheEventfd() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "p.img", 256 * 4096);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native");
        // a window that reaches its maximum (1 s) after two quick events, so the loop spins
        // between a submission and its completion
        ctx.setPollParams(1_000_000_000L, 1_000_000, 0);
        try {
            AioStats before = engine().stats().snapshot();
            for (int i = 0; i < 256; i++) {
                assertArrayEquals(patternBytes(4096L * i, 4096), AioTestSupport.read(ctx, node, 4096L * i, 4096), "block " + i);
            }
            AioStats after = engine().stats().snapshot();
            assertTrue(after.polledReaps - before.polledReaps > 0, "completions found by busy-polling the ring: " + after);
            assertEquals(after.iocbsSubmitted, after.ringCompletions + after.syscallCompletions, after.toString());
        } finally {
            ctx.setPollParams(0, 0, 0);
            ctx.run(node::close);
        }
    }

    @Test
    void anIoSubmitAfterAReapCountsOneTurnaround() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "t.img", 16 * 4096);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native");
        try (NativeBuffer buf = NativeBuffer.allocate(4096, 4096)) {
            AioStats before = engine().stats().snapshot();
            // eight reads one after another in one coroutine: each after the first is submitted
            // right after the previous one's reap, on the I/O thread
            int r = ctx.run(() -> {
                for (int i = 0; i < 8; i++) {
                    int ret = node.preadv(4096L * i, 4096, buf.asIoVector(0, 4096), 0);
                    if (ret < 0) return ret;
                }
                return 0;
            });
            assertEquals(0, r);
            AioStats d = engine().stats().snapshot().minus(before);
            assertEquals(8, d.iocbsSubmitted, d.toString());
            // 7 spans between the reads, and perhaps one that the set-up's last reap opened
            assertTrue(d.turnarounds >= 7 && d.turnarounds <= 8, "turnarounds: " + d);
            assertTrue(d.meanTurnaroundMicros() > 0 && d.meanTurnaroundMicros() * 1e3 <= AioStats.MAX_TURNAROUND_NANOS, d.toString());
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void requestsOfOneDeferredSectionGoOutInOneIoSubmit() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "b.img", 64 * 4096);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native");
        try (NativeBuffer buf = NativeBuffer.allocate(16 * 4096, 4096)) {
            AioStats before = engine().stats().snapshot();
            int[] r = AioTestSupport.readBatch(ctx, node, buf, 16);
            AioStats after = engine().stats().snapshot();
            assertArrayEquals(new int[16], r);
            assertEquals(1, after.ioSubmitCalls - before.ioSubmitCalls, "one io_submit for the batch: " + after);
            assertEquals(16, after.iocbsSubmitted - before.iocbsSubmitted);
            assertBlocks(buf, 16);
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void aBatchReachingAioMaxBatchIsSubmittedEarly() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "c.img", 64 * 4096);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native,aio-max-batch=8");
        try (NativeBuffer buf = NativeBuffer.allocate(40 * 4096, 4096)) {
            AioStats before = engine().stats().snapshot();
            int[] r = AioTestSupport.readBatch(ctx, node, buf, 40);
            AioStats after = engine().stats().snapshot();
            assertArrayEquals(new int[40], r);
            assertEquals(5, after.ioSubmitCalls - before.ioSubmitCalls, "40 requests at batch 8: " + after);
            assertEquals(40, after.iocbsSubmitted - before.iocbsSubmitted);
            assertBlocks(buf, 40);
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void eagainSetsBlockedAndTheCompletionPathResubmits() throws Exception {
        // a tiny kernel context (io_setup(1)) under the default in-flight cap, no reaping right after
        // io_submit, and aio-max-batch=1: one-iocb submissions fill the ring until the kernel says EAGAIN
        LinuxAio[] e = new LinuxAio[1];
        ctx.runOnThread(() -> e[0] = ctx.attachment(LinuxAio.class, c -> new LinuxAio(c, 1, 1024, 32)));
        LinuxAio aio = e[0];
        aio.setReapAfterSubmit(false);
        int n = aio.ringSize() + 16;
        Path f = AioTestSupport.patternFile(dir, "d.img", n * 4096);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native,aio-max-batch=1");
        try (NativeBuffer buf = NativeBuffer.allocate((long) n * 4096, 4096)) {
            int[] results = new int[n];
            java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(n);
            boolean[] sawBlocked = new boolean[1];
            ctx.runOnThread(() -> {
                for (int i = 0; i < n; i++) {
                    int k = i;
                    ctx.spawn(() -> {
                        results[k] = node.preadv(4096L * k, 4096, io.vblk.block.IoVector.of(buf.address() + 4096L * k, 4096), 0);
                        done.countDown();
                    });
                    sawBlocked[0] |= aio.blocked();
                }
            });
            assertTrue(done.await(30, java.util.concurrent.TimeUnit.SECONDS), "all requests completed after EAGAIN");
            assertTrue(aio.stats().eagain >= 1, "io_submit returned EAGAIN: " + aio.stats());
            assertTrue(sawBlocked[0], "blocked flag was set");
            assertEquals(false, aio.blocked());
            assertArrayEquals(new int[n], results);
            byte[] got = new byte[n * 4096];
            buf.copyTo(0, got, 0, got.length);
            assertArrayEquals(patternBytes(0, got.length), got);
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void shortReadPastEndOfFileIsZeroFilled() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "e.img", 6000);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native");
        try (NativeBuffer b = NativeBuffer.allocate(8192, 4096)) {
            b.fill(0, 8192, (byte) 0x5a);
            int r = ctx.run(() -> node.preadv(4096, 8192, b.asIoVector(0, 8192), 0));
            assertEquals(0, r);
            byte[] got = new byte[8192];
            b.copyTo(0, got, 0, 8192);
            byte[] want = new byte[8192];
            System.arraycopy(patternBytes(4096, 6000 - 4096), 0, want, 0, 6000 - 4096);
            assertArrayEquals(want, got);
            assertTrue(engine().stats().iocbsSubmitted >= 1, "went through AIO");
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void fuaWritesUseRwfDsyncAndReadBack() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "g.img", 1 << 16);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native");
        try {
            assertEquals(RequestFlags.FUA, node.driver().supportedWriteFlags() & RequestFlags.FUA);
            long before = engine().stats().iocbsSubmitted;
            byte[] data = patternBytes(777, 8192);
            assertEquals(0, AioTestSupport.write(ctx, node, 8192, data, RequestFlags.FUA));
            assertEquals(1, engine().stats().iocbsSubmitted - before, "FUA is one iocb, no separate flush");
            assertArrayEquals(data, java.util.Arrays.copyOfRange(java.nio.file.Files.readAllBytes(f), 8192, 8192 + 8192));
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void flushUsesFdsyncAndFallsBackToFdatasync() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "h.img", 1 << 16);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native");
        try {
            LinuxAio aio = engine();
            assertEquals(0, AioTestSupport.write(ctx, node, 0, patternBytes(5, 4096), 0));
            long before = aio.stats().iocbsSubmitted;
            assertEquals(0, ctx.run(node::flush));
            assertTrue(aio.fdsyncSupported(), "kernel accepted IOCB_CMD_FDSYNC");
            assertEquals(1, aio.stats().iocbsSubmitted - before, "flush went out as one FDSYNC iocb");

            aio.setFdsyncSupported(false); // force the fallback
            assertEquals(0, AioTestSupport.write(ctx, node, 4096, patternBytes(6, 4096), 0));
            before = aio.stats().iocbsSubmitted;
            assertEquals(0, ctx.run(node::flush));
            assertEquals(0, aio.stats().iocbsSubmitted - before, "fallback flush is fdatasync on a worker");
            byte[] all = java.nio.file.Files.readAllBytes(f);
            assertArrayEquals(patternBytes(6, 4096), Arrays.copyOfRange(all, 4096, 8192));
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void aSubmitErrorFailsOnlyThatRequest() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "err.img", 4 * 4096);
        int fd = Native.LIBC.open(f.toString(), Syscalls.O_RDONLY | Syscalls.O_DIRECT | Syscalls.O_CLOEXEC, 0);
        assertTrue(fd >= 0);
        int badFd = 1 << 20; // never an open descriptor: io_submit refuses its iocb with EBADF
        try (NativeBuffer buf = NativeBuffer.allocate(4 * 4096, 4096)) {
            LinuxAio aio = engine();
            int[] fds = {fd, badFd, fd, badFd};
            int[] results = new int[4];
            java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(4);
            ctx.runOnThread(() -> {
                for (int i = 0; i < 4; i++) {
                    int k = i;
                    ctx.spawn(() -> {
                        results[k] = aio.preadv(fds[k], 4096L * k, io.vblk.block.IoVector.of(buf.address() + 4096L * k, 4096), 0, 4096, 0);
                        done.countDown();
                    });
                }
            });
            assertTrue(done.await(10, java.util.concurrent.TimeUnit.SECONDS));
            assertArrayEquals(new int[] {0, -io.vblk.block.Errno.EBADF, 0, -io.vblk.block.Errno.EBADF}, results);
            assertEquals(2, aio.stats().submitErrors);
            byte[] got = new byte[4096];
            buf.copyTo(0, got, 0, 4096);
            assertArrayEquals(patternBytes(0, 4096), got);
            buf.copyTo(2 * 4096, got, 0, 4096);
            assertArrayEquals(patternBytes(2 * 4096, 4096), got);
            assertEquals(false, aio.blocked());
            assertEquals(0, aio.inQueue());
        } finally {
            Native.LIBC.close(fd);
        }
    }

    @Test
    void plugBatchesAndTheSyscallReaperWorks() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "plug.img", 8 * 4096);
        BlockNode node = AioTestSupport.open(f, "cache.direct=on,aio=native");
        try (NativeBuffer buf = NativeBuffer.allocate(8 * 4096, 4096)) {
            LinuxAio aio = engine();
            aio.setUserSpaceReap(false);
            AioStats before = aio.stats().snapshot();
            int[] results = new int[8];
            java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(8);
            // on the context thread (the loop wraps callbacks in its own section too): nothing may go
            // out before the outermost end, and then all eight go in one io_submit
            ctx.scheduleAfter(0, () -> {
                aio.plug();
                aio.plug(); // nests
                for (int i = 0; i < 8; i++) {
                    int k = i;
                    ctx.spawn(() -> {
                        results[k] = node.preadv(4096L * k, 4096, io.vblk.block.IoVector.of(buf.address() + 4096L * k, 4096), 0);
                        done.countDown();
                    });
                }
                aio.unplug();
                if (aio.stats().ioSubmitCalls != before.ioSubmitCalls || aio.inQueue() != 8) {
                    results[0] = 1; // submitted before the outermost unplug
                }
                aio.unplug();
            });
            assertTrue(done.await(10, java.util.concurrent.TimeUnit.SECONDS));
            assertArrayEquals(new int[8], results);
            AioStats after = aio.stats().snapshot();
            assertEquals(1, after.ioSubmitCalls - before.ioSubmitCalls, after.toString());
            assertEquals(8, after.syscallCompletions - before.syscallCompletions, "reaped by io_getevents: " + after);
            assertEquals(0, after.ringCompletions - before.ringCompletions);
            assertBlocks(buf, 8);
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void manySlicesGrowTheIovecArrayOnce() throws Exception {
        Path f = AioTestSupport.patternFile(dir, "iov.img", 1 << 16);
        int fd = Native.LIBC.open(f.toString(), Syscalls.O_RDONLY | Syscalls.O_CLOEXEC, 0);
        assertTrue(fd >= 0);
        try (NativeBuffer buf = NativeBuffer.allocate(200 * 256, 4096)) {
            LinuxAio aio = engine();
            // 200 slices of 100 bytes with gaps between them: 200 iovecs in one iocb
            io.vblk.block.IoVector v = new io.vblk.block.IoVector();
            for (int i = 0; i < 200; i++) {
                v.add(buf.address() + 256L * i, 100);
            }
            for (int round = 0; round < 2; round++) {
                buf.fill(0, 200 * 256, (byte) 0);
                int r = ctx.run(() -> aio.preadv(fd, 333, v, 0, 200 * 100, 0));
                assertEquals(0, r);
                byte[] want = patternBytes(333, 200 * 100);
                for (int i = 0; i < 200; i++) {
                    byte[] got = new byte[100];
                    buf.copyTo(256L * i, got, 0, 100);
                    assertArrayEquals(Arrays.copyOfRange(want, 100 * i, 100 * i + 100), got, "slice " + i);
                }
            }
        } finally {
            Native.LIBC.close(fd);
        }
    }
}
