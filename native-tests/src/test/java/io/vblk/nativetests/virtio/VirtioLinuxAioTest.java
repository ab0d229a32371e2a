package io.vblk.nativetests.virtio;

import io.vblk.aio.AioStats;
import io.vblk.aio.IoThreads;
import io.vblk.aio.LinuxAio;
import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.NativeMemory;
import io.vblk.nativetests.Requirements;
import io.vblk.virtio.blk.VirtioBlkConfig;
import io.vblk.virtio.blk.VirtioBlkDevice;
import io.vblk.virtio.driver.GuestDriver;
import io.vblk.virtio.driver.GuestQueue;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.memory.GuestMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Path;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The whole device path on real parts: memfd guest memory, a raw O_DIRECT file, Linux AIO.
 * 32 requests made available with one kick reach the kernel in exactly one io_submit (counted by
 * LinuxAio itself), for writes and for reads, and the bytes come back; on a file node and on raw
 * over file, with the coroutine-free start of reads and writes (VirtioBlkConfig.directRw) and without.
 */
class VirtioLinuxAioTest {
    @TempDir
    Path dir;

    private static AioStats stats(AioContext ctx) {
        AioStats[] s = new AioStats[1];
        ctx.runOnThread(() -> s[0] = LinuxAio.of(ctx).stats().snapshot());
        return s[0];
    }

    /**
     * A 64 MiB sparse file at {@code img} opened with O_DIRECT and Linux AIO as a file node
     * ({@code graph} "file") or raw over it ("raw"). Where that cannot be done the test is skipped
     * (a failure under CI) and {@code ctx} is closed.
     */
    private static BlockNode openDisk(Path img, String graph, AioContext ctx) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(64L << 20);
        }
        String file = "filename=" + img + ",aio=native,cache.direct=on";
        try {
            return BlockNode.open(BlockOptions.parse(graph.equals("raw") ? "driver=raw,file.driver=file,file." + file.replace(",", ",file.")
                    : "driver=file," + file));
        } catch (BlockException e) {
            ctx.close();
            Requirements.require(false, "O_DIRECT file with aio=native: " + e.getMessage());
            throw e;
        }
    }

    @ParameterizedTest(name = "{0}, directRw={1}")
    @CsvSource({"file,true", "file,false", "raw,true", "raw,false"})
    void thirtyTwoRequestsOneKickOneIoSubmit(String graph, boolean directRw) throws Exception {
        Path img = dir.resolve("disk.raw");
        AioContext ctx = IoThreads.start("virtio-aio");
        BlockNode node = openDisk(img, graph, ctx);
        try (GuestMemory mem = GuestMemory.memfd(64L << 20)) {
            VirtioBlkConfig cfg = new VirtioBlkConfig();
            cfg.directRw = directRw;
            VirtioBlkDevice dev = new VirtioBlkDevice(node, cfg, new AioContext[] {ctx});
            GuestDriver drv = new GuestDriver(dev, mem, 0, 48L << 20);
            drv.initialize(256);
            GuestQueue q = drv.queue(0);
            long buf = drv.alloc(32 * 4096, 4096);
            long h = mem.translate(buf, 32 * 4096);
            for (int i = 0; i < 32 * 4096; i++) NativeMemory.putByte(h + i, (byte) (i * 31 + i / 4096));
            stats(ctx); // create the engine before counting
            for (int pass = 0; pass < 2; pass++) {
                int type = pass == 0 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
                long target = pass == 0 ? buf : drv.alloc(32 * 4096, 4096);
                AioStats before = stats(ctx);
                long directBefore = dev.stats().directSubmissions();
                for (int i = 0; i < 32; i++) {
                    // every other 4k block: nothing merges, 32 iocbs
                    assertTrue(q.submit(type, 16L * i, target + 4096L * i, 4096, Layout.DIRECT) >= 0);
                }
                q.forceKick();
                for (int i = 0; i < 32; i++) {
                    assertTrue(q.waitUsed(10_000), "completion " + i);
                    assertEquals(VIRTIO_BLK_S_OK, q.status(q.lastHead()));
                }
                AioStats after = stats(ctx);
                assertEquals(1, after.ioSubmitCalls - before.ioSubmitCalls, "io_submit calls for one kick of 32 requests");
                assertEquals(32, after.iocbsSubmitted - before.iocbsSubmitted);
                // without a coroutine when allowed: every request of this graph qualifies
                assertEquals(directRw ? 32 : 0, dev.stats().directSubmissions() - directBefore, "requests started without a coroutine");
                if (pass == 0) { // the file itself holds the data at each request's sector
                    byte[] got = new byte[4096];
                    try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
                        for (int i = 0; i < 32; i++) {
                            f.seek(16L * 512 * i);
                            f.readFully(got);
                            for (int b = 0; b < 4096; b++) {
                                assertEquals(NativeMemory.getByte(h + 4096L * i + b), got[b], "file byte " + b + " of request " + i);
                            }
                        }
                    }
                }
                if (pass == 1) {
                    long rh = mem.translate(target, 32 * 4096);
                    for (int i = 0; i < 32 * 4096; i++) {
                        assertEquals(NativeMemory.getByte(h + i), NativeMemory.getByte(rh + i), "byte " + i);
                    }
                }
            }
            dev.reset();
        } finally {
            ctx.run(node::close);
            ctx.close();
        }
    }

    /**
     * Reads and writes started without a coroutine allocate nothing on the I/O thread: the AIO
     * request, its delivery task, the tracked requests and the device's request are all pooled.
     * 16,000 requests on raw over an O_DIRECT file after a warm-up.
     */
    @Test
    void noAllocationPerRequestOnTheDirectPath() throws Exception {
        AioContext ctx = IoThreads.start("virtio-alloc");
        BlockNode node = openDisk(dir.resolve("alloc.raw"), "raw", ctx);
        var mx = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        try (GuestMemory mem = GuestMemory.memfd(64L << 20)) {
            VirtioBlkDevice dev = new VirtioBlkDevice(node, new VirtioBlkConfig(), new AioContext[] {ctx});
            GuestDriver drv = new GuestDriver(dev, mem, 0, 48L << 20);
            drv.initialize(256);
            GuestQueue q = drv.queue(0);
            long buf = drv.alloc(32 * 4096, 4096);
            long[] tid = new long[1];
            ctx.runOnThread(() -> tid[0] = Thread.currentThread().threadId());
            Runnable batch = () -> {
                for (int i = 0; i < 32; i++) {
                    int type = (i & 1) == 0 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
                    assertTrue(q.submit(type, 16L * i, buf + 4096L * i, 4096, Layout.DIRECT) >= 0);
                }
                q.forceKick();
                for (int i = 0; i < 32; i++) {
                    assertTrue(q.waitUsed(10_000), "completion " + i);
                    assertEquals(VIRTIO_BLK_S_OK, q.status(q.lastHead()));
                }
            };
            for (int i = 0; i < 300; i++) batch.run(); // pools and JIT
            long direct = dev.stats().directSubmissions();
            long before = mx.getThreadAllocatedBytes(tid[0]);
            int batches = 500;
            for (int i = 0; i < batches; i++) batch.run();
            long after = mx.getThreadAllocatedBytes(tid[0]);
            assertEquals(batches * 32L, dev.stats().directSubmissions() - direct, "every request started without a coroutine");
            double perRequest = (after - before) / (batches * 32.0);
            System.out.printf("I/O thread allocated %.2f bytes per request (direct path, raw over O_DIRECT file)%n", perRequest);
            // a kick costs one task-queue node per 32 requests; requests cost nothing
            assertTrue(perRequest < 8, "bytes allocated per request on the I/O thread: " + perRequest);
            dev.reset();
        } finally {
            ctx.run(node::close);
            ctx.close();
        }
    }
}
