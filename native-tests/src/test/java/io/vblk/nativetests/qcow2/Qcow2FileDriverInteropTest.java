package io.vblk.nativetests.qcow2;

import static io.vblk.nativetests.qcow2.ImageFiles.ok;
import static io.vblk.nativetests.qcow2.ImageFiles.run;
import static org.junit.jupiter.api.Assertions.*;

import io.vblk.aio.IoThreads;
import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * qcow2 over the real {@code file} driver (threads, and O_DIRECT + Linux AIO): a qemu-img backing
 * chain is opened from the overlay's header (backing format, relative name), batches of concurrent
 * writes land in shared clusters, then {@code qemu-img check} exits 0 and {@code qemu-img compare}
 * matches the raw shadow.
 */
class Qcow2FileDriverInteropTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @CsvSource({"'cache.direct=off',65536", "'cache.direct=on,file.aio=native',65536", "'cache.direct=on,file.aio=native',4096",
            "'cache.direct=off',2097152"})
    void concurrentWritesThroughTheFileDriverOnABackingChain(String cacheOpts, int cs) throws Exception {
        ImageFiles.requireQemu();
        int size = 16 << 20;
        Path base = dir.resolve("base.qcow2");
        Path top = dir.resolve("top.qcow2");
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=" + cs, base.toString(), String.valueOf(size));
        ok("qemu-io", "-c", "write -P 0x5c 0 12M", base.toString());
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=" + cs, "-b", "base.qcow2", "-F", "qcow2", top.toString());
        byte[] shadow = new byte[size];
        Arrays.fill(shadow, 0, 12 << 20, (byte) 0x5c);
        AioContext ctx = IoThreads.start("qcow2-file");
        try {
            BlockNode[] qn = new BlockNode[1];
            String opts = "driver=qcow2,file.driver=file,file.filename=" + top + ",discard=unmap," + cacheOpts;
            assertEquals(0, ctx.run(() -> {
                try {
                    qn[0] = BlockNode.open(BlockOptions.parse(opts));
                    return 0;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            }));
            BlockNode q = qn[0];
            assertNotNull(q.backing(), "backing file opened from the header");
            assertEquals("qcow2", q.backing().node().driverName());
            Random r = new Random(cs);
            for (int batch = 0; batch < 12; batch++) {
                int writers = 16;
                int slot = size / writers;
                CountDownLatch done = new CountDownLatch(writers);
                int[] res = new int[writers];
                List<Runnable> bodies = new ArrayList<>();
                List<NativeBuffer> bufs = new ArrayList<>();
                for (int w = 0; w < writers; w++) {
                    int wi = w;
                    // a random piece inside the writer's own slot; slots of neighbours share clusters
                    int len = 1 + r.nextInt(Math.min(slot - 1, 3 * cs));
                    long off = (long) w * slot + r.nextInt(slot - len + 1);
                    byte[] d = new byte[len];
                    r.nextBytes(d);
                    System.arraycopy(d, 0, shadow, (int) off, len);
                    NativeBuffer b = NativeBuffer.allocate(len, 4096);
                    b.copyFrom(d, 0, 0, len);
                    bufs.add(b);
                    bodies.add(() -> {
                        res[wi] = q.pwritev(off, len, IoVector.of(b.address(), len), 0, 0);
                        done.countDown();
                    });
                }
                ctx.runOnThread(() -> bodies.forEach(ctx::spawn));
                assertTrue(done.await(60, TimeUnit.SECONDS));
                for (int w = 0; w < writers; w++) assertEquals(0, res[w], "write " + w);
                bufs.forEach(NativeBuffer::close);
                if (batch % 4 == 3) assertEquals(0, ctx.run(q::flush));
            }
            int dl = Math.max(1 << 20, cs); // whole clusters only: partial-cluster discards do nothing
            assertEquals(0, ctx.run(() -> q.pdiscard(14L << 20, dl)));
            Arrays.fill(shadow, 14 << 20, (14 << 20) + dl, (byte) 0);
            assertEquals(0, ctx.run(q::close));
        } finally {
            ctx.close();
        }
        ImageFiles.Result c = run("qemu-img", "check", top.toString());
        assertEquals(0, c.exit(), c.out());
        Path raw = dir.resolve("shadow.raw");
        Files.write(raw, shadow);
        ImageFiles.Result cmp = run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", top.toString(), raw.toString());
        assertEquals(0, cmp.exit(), cmp.out());
        assertEquals(0, run("qemu-img", "check", base.toString()).exit());
    }
}
