package io.vblk.nativetests.qcow2;

import static io.vblk.nativetests.qcow2.ImageFiles.ok;
import static io.vblk.nativetests.qcow2.ImageFiles.run;
import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.PreallocMode;
import io.vblk.block.RequestFlags;
import io.vblk.qcow2.Qcow2Creator;
import io.vblk.qcow2.Qcow2Driver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * vblk's qcow2 driver against QEMU: images qemu-img created and qemu-io wrote are read and written
 * by vblk, then {@code qemu-img check} must exit 0 and {@code qemu-img compare} must find them
 * equal to a raw shadow that received the same operations; images vblk created pass qemu-img check.
 */
class Qcow2QemuInteropTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        ImageFiles.requireQemu();
    }

    static byte[] rnd(Random r, int n) {
        byte[] b = new byte[n];
        r.nextBytes(b);
        return b;
    }

    void checkAndCompare(Path img, byte[] shadow) throws Exception {
        ImageFiles.Result c = run("qemu-img", "check", "-f", "qcow2", img.toString());
        assertEquals(0, c.exit(), "qemu-img check:\n" + c.out());
        Path raw = dir.resolve("shadow-" + System.nanoTime() + ".raw");
        Files.write(raw, shadow);
        ImageFiles.Result cmp = run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", img.toString(), raw.toString());
        assertEquals(0, cmp.exit(), "qemu-img compare:\n" + cmp.out());
        Files.delete(raw);
    }

    /** Random writes (any size and alignment), zero writes and discards; a raw shadow gets the same. */
    void workload(ImageFiles f, BlockNode q, byte[] shadow, int cs, long seed, int ops) {
        Random r = new Random(seed);
        int size = shadow.length;
        for (int op = 0; op < ops; op++) {
            int kind = r.nextInt(10);
            long off = r.nextInt(size);
            int len = (int) Math.min(size - off, 1 + r.nextInt(r.nextBoolean() ? 3 * cs : 8192));
            if (kind < 6) {
                byte[] d = rnd(r, len);
                assertEquals(0, f.write(q, off, d));
                System.arraycopy(d, 0, shadow, (int) off, len);
            } else if (kind < 8) {
                int flags = r.nextBoolean() ? RequestFlags.MAY_UNMAP : 0;
                assertEquals(0, f.ctx.run(() -> q.pwriteZeroes(off, len, flags)));
                Arrays.fill(shadow, (int) off, (int) (off + len), (byte) 0);
            } else {
                long a = off / cs * cs;
                long l = Math.min(size - a, (long) (1 + r.nextInt(3)) * cs);
                assertEquals(0, f.ctx.run(() -> q.pdiscard(a, l)));
                Arrays.fill(shadow, (int) a, (int) (a + l), (byte) 0);
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"512,4194304,1.1", "4096,16777216,1.1", "65536,33554432,1.1", "2097152,33554432,1.1", "65536,16777216,0.10"})
    void randomWorkloadOnQemuImageIsCheckedAndComparedByQemuImg(int cs, int size, String compat) throws Exception {
        Path img = dir.resolve("w.qcow2");
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=" + cs + ",compat=" + compat, img.toString(), String.valueOf(size));
        long len = Files.size(img);
        byte[] shadow = new byte[size];
        try (ImageFiles f = new ImageFiles()) {
            BlockNode mem = f.load(img, 3L * size + (16 << 20));
            BlockNode q = f.openQcow2(mem, "discard=unmap");
            workload(f, q, shadow, cs, cs + size, 250);
            assertArrayEquals(shadow, f.read(q, 0, size));
            assertEquals(0, f.close(q));
            ImageFiles.store(mem, img, len);
        }
        checkAndCompare(img, shadow);
    }

    @ParameterizedTest
    @CsvSource({"3,65536,16,off,off", "2,65536,16,off,off", "3,512,1,off,on", "3,4096,64,metadata,off", "3,2097152,8,off,off",
            "3,4096,16,metadata,on"})
    void imagesCreatedByVblkPassQemuImgCheck(int version, int cs, int refbits, String prealloc, String lazy) throws Exception {
        Path img = dir.resolve("c.qcow2");
        long size = 64L << 20;
        try (ImageFiles f = new ImageFiles()) {
            BlockNode mem = BlockNode.open(BlockOptions.parse("driver=memory,size=" + (size + (16 << 20))));
            f.mems.add(mem);
            long[] end = new long[1];
            assertEquals(0, f.ctx.run(() -> {
                try {
                    end[0] = Qcow2Creator.create(mem, new Qcow2Creator.Options().size(size).version(version).clusterSize(cs).refcountBits(refbits)
                            .lazyRefcounts(lazy.equals("on")).preallocation(PreallocMode.parse(prealloc)));
                    return 0;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            }));
            ImageFiles.store(mem, img, end[0]);
            ImageFiles.Result c = run("qemu-img", "check", img.toString());
            assertEquals(0, c.exit(), c.out());
            ImageFiles.Result info = run("qemu-img", "info", "--output=json", img.toString());
            assertEquals(0, info.exit(), info.out());
            assertTrue(info.out().contains("\"cluster-size\": " + cs), info.out());
            assertTrue(info.out().contains("\"virtual-size\": " + size), info.out());
            if (version == 3) assertTrue(info.out().contains("\"refcount-bits\": " + refbits), info.out());
            // and QEMU can write to it
            ok("qemu-io", "-c", "write -P 0x5a 100k 300k", img.toString());
            c = run("qemu-img", "check", img.toString());
            assertEquals(0, c.exit(), c.out());
        }
    }

    @Test
    void defaultLayoutMatchesQemuImgCreate() throws Exception {
        Path ours = dir.resolve("ours.qcow2");
        Path theirs = dir.resolve("theirs.qcow2");
        ok("qemu-img", "create", "-q", "-f", "qcow2", theirs.toString(), "1G");
        try (ImageFiles f = new ImageFiles()) {
            BlockNode mem = BlockNode.open(BlockOptions.parse("driver=memory,size=1M"));
            f.mems.add(mem);
            long[] end = new long[1];
            f.ctx.run(() -> {
                try {
                    end[0] = Qcow2Creator.create(mem, new Qcow2Creator.Options().size(1L << 30));
                    return 0;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            ImageFiles.store(mem, ours, end[0]);
        }
        assertEquals(Files.size(theirs), Files.size(ours));
        assertArrayEquals(Files.readAllBytes(theirs), Files.readAllBytes(ours), "byte-identical to qemu-img create");
    }

    @Test
    void zeroClustersWrittenByQemuIoAreReadAndRewritten() throws Exception {
        Path img = dir.resolve("z.qcow2");
        int size = 4 << 20;
        ok("qemu-img", "create", "-q", "-f", "qcow2", img.toString(), String.valueOf(size));
        ok("qemu-io", "-c", "write -P 0xaa 0 512k", "-c", "write -z 64k 64k", "-c", "write -z -u 128k 64k", "-c", "discard 192k 64k",
                "-c", "write -z 1M 128k", img.toString());
        byte[] shadow = new byte[size];
        Arrays.fill(shadow, 0, 512 << 10, (byte) 0xaa);
        Arrays.fill(shadow, 64 << 10, 256 << 10, (byte) 0);
        long len = Files.size(img);
        try (ImageFiles f = new ImageFiles()) {
            BlockNode mem = f.load(img, 3L * size);
            BlockNode q = f.openQcow2(mem, "");
            assertArrayEquals(shadow, f.read(q, 0, size));
            // partial writes into zero-plain, zero-alloc and discarded clusters
            for (long off : new long[] {70_000, 130_000, 200_000, (1 << 20) + 5}) {
                byte[] d = rnd(new Random(off), 3000);
                assertEquals(0, f.write(q, off, d));
                System.arraycopy(d, 0, shadow, (int) off, d.length);
            }
            assertArrayEquals(shadow, f.read(q, 0, size));
            assertEquals(0, f.close(q));
            ImageFiles.store(mem, img, len);
        }
        checkAndCompare(img, shadow);
    }

    @ParameterizedTest
    @CsvSource({"65536", "4096"})
    void compressedClustersFromQemuImgConvertAreReadAndCowedOnWrite(int cs) throws Exception {
        int size = 2 << 20;
        byte[] data = new byte[size];
        Random r = new Random(cs);
        for (int i = 0; i < size; i += 1024) {
            // compressible but distinct content
            Arrays.fill(data, i, i + 1024, (byte) r.nextInt(256));
        }
        Path raw = dir.resolve("src.raw");
        Files.write(raw, data);
        Path img = dir.resolve("comp.qcow2");
        ok("qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=" + cs, raw.toString(), img.toString());
        ImageFiles.Result map = run("qemu-img", "map", "--output=json", img.toString());
        assertTrue(map.out().contains("\"compressed\": true") || !map.out().contains("\"offset\""), "image has compressed clusters:\n" + map.out());
        long len = Files.size(img);
        byte[] shadow = data.clone();
        try (ImageFiles f = new ImageFiles()) {
            BlockNode mem = f.load(img, 4L * size);
            BlockNode q = f.openQcow2(mem, "");
            assertArrayEquals(shadow, f.read(q, 0, size), "compressed clusters decompress to the source");
            for (long off : new long[] {100, 3L * cs + 17, 10L * cs - 50, size - 700}) {
                byte[] d = rnd(new Random(off), 600);
                assertEquals(0, f.write(q, off, d));
                System.arraycopy(d, 0, shadow, (int) off, d.length);
            }
            assertEquals(0, f.ctx.run(() -> q.pwriteZeroes(20L * cs, cs, RequestFlags.MAY_UNMAP)));
            Arrays.fill(shadow, 20 * cs, 21 * cs, (byte) 0);
            assertArrayEquals(shadow, f.read(q, 0, size));
            assertEquals(0, f.close(q));
            ImageFiles.store(mem, img, len);
        }
        checkAndCompare(img, shadow);
    }

    @Test
    void backingChainWrittenByQemuIsReadAndOverlayWrittenByVblk() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Path top = dir.resolve("top.qcow2");
        int size = 8 << 20;
        ok("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), String.valueOf(size));
        ok("qemu-io", "-c", "write -P 0x11 0 4M", "-c", "write -P 0x22 1M 64k", "-c", "write -P 0x33 6M 1M", base.toString());
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top.toString());
        ok("qemu-io", "-c", "write -P 0x44 2M 100k", top.toString());
        byte[] shadow = new byte[size];
        Arrays.fill(shadow, 0, 4 << 20, (byte) 0x11);
        Arrays.fill(shadow, 1 << 20, (1 << 20) + (64 << 10), (byte) 0x22);
        Arrays.fill(shadow, 6 << 20, 7 << 20, (byte) 0x33);
        Arrays.fill(shadow, 2 << 20, (2 << 20) + 100 * 1024, (byte) 0x44);
        long len = Files.size(top);
        try (ImageFiles f = new ImageFiles()) {
            BlockNode baseNode = f.openQcow2(f.load(base, 0), "read-only=on");
            BlockNode mem = f.load(top, 3L * size);
            BlockNode q = f.openQcow2(mem, "backing=null,discard=unmap");
            ((Qcow2Driver) q.driver()).attachBacking(baseNode);
            assertArrayEquals(shadow, f.read(q, 0, size), "overlay over base reads the chain");
            Random r = new Random(9);
            for (int i = 0; i < 40; i++) {
                long off = r.nextInt(size - 200_000);
                byte[] d = rnd(r, 1 + r.nextInt(150_000));
                assertEquals(0, f.write(q, off, d));
                System.arraycopy(d, 0, shadow, (int) off, d.length);
            }
            assertEquals(0, f.ctx.run(() -> q.pdiscard(5L << 20, 1L << 20)));
            Arrays.fill(shadow, 5 << 20, 6 << 20, (byte) 0);
            assertArrayEquals(shadow, f.read(q, 0, size));
            assertEquals(0, f.close(q));
            ImageFiles.store(mem, top, len);
        }
        checkAndCompare(top, shadow);
        assertEquals(0, run("qemu-img", "check", base.toString()).exit());
    }

    @Test
    void dirtyLazyRefcountImageKilledInQemuIoIsRepairedByVblkOpen() throws Exception {
        Path img = dir.resolve("lazy.qcow2");
        int size = 8 << 20;
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4096", img.toString(), String.valueOf(size));
        ImageFiles.Result killed = run("qemu-io", "-c", "write -P 0x33 0 1M", "-c", "write -P 0x44 3M 512k", "-c", "sigraise 9", img.toString());
        assertNotEquals(0, killed.exit());
        ImageFiles.Result before = run("qemu-img", "check", img.toString());
        assertEquals(2, before.exit(), "killed lazy-refcount image has refcount errors:\n" + before.out());
        byte[] shadow = new byte[size];
        Arrays.fill(shadow, 0, 1 << 20, (byte) 0x33);
        Arrays.fill(shadow, 3 << 20, (3 << 20) + (512 << 10), (byte) 0x44);
        long len = Files.size(img);
        try (ImageFiles f = new ImageFiles()) {
            BlockNode mem = f.load(img, 3L * size);
            BlockNode q = f.openQcow2(mem, "");
            assertArrayEquals(shadow, f.read(q, 0, size));
            byte[] d = rnd(new Random(5), 200_000);
            assertEquals(0, f.write(q, 900_000, d));
            System.arraycopy(d, 0, shadow, 900_000, d.length);
            assertEquals(0, f.close(q));
            ImageFiles.store(mem, img, len);
        }
        checkAndCompare(img, shadow);
        ImageFiles.Result info = run("qemu-img", "info", "--output=json", img.toString());
        assertTrue(info.out().contains("\"dirty-flag\": false") || !info.out().contains("dirty-flag"), info.out());
    }

    @Test
    void resizeByVblkGrowsL1AndQemuAgrees() throws Exception {
        Path img = dir.resolve("grow.qcow2");
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=1024", img.toString(), "16M");
        ok("qemu-io", "-c", "write -P 0x71 1M 100k", img.toString());
        int size = 64 << 20;
        byte[] shadow = new byte[size];
        Arrays.fill(shadow, 1 << 20, (1 << 20) + 100 * 1024, (byte) 0x71);
        long len = Files.size(img);
        try (ImageFiles f = new ImageFiles()) {
            BlockNode mem = f.load(img, 16L << 20);
            BlockNode q = f.openQcow2(mem, "");
            assertEquals(0, f.ctx.run(() -> q.truncate(size, true, PreallocMode.OFF, 0)));
            byte[] d = rnd(new Random(3), 300_000);
            assertEquals(0, f.write(q, 50L << 20, d));
            System.arraycopy(d, 0, shadow, 50 << 20, d.length);
            assertEquals(0, f.close(q));
            ImageFiles.store(mem, img, len);
        }
        ImageFiles.Result info = run("qemu-img", "info", "--output=json", img.toString());
        assertTrue(info.out().contains("\"virtual-size\": " + size), info.out());
        checkAndCompare(img, shadow);
    }

    @Test
    void internalSnapshotIsRespected() throws Exception {
        Path img = dir.resolve("snap.qcow2");
        int size = 4 << 20;
        ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", img.toString(), String.valueOf(size));
        ok("qemu-io", "-c", "write -P 0x61 0 3M", img.toString());
        ok("qemu-img", "snapshot", "-c", "s1", img.toString());
        byte[] before = new byte[size];
        Arrays.fill(before, 0, 3 << 20, (byte) 0x61);
        byte[] shadow = before.clone();
        long len = Files.size(img);
        try (ImageFiles f = new ImageFiles()) {
            BlockNode mem = f.load(img, 4L * size);
            BlockNode q = f.openQcow2(mem, "discard=unmap");
            Random r = new Random(11);
            for (int i = 0; i < 30; i++) {
                long off = r.nextInt(size - 100_000);
                byte[] d = rnd(r, 1 + r.nextInt(100_000));
                assertEquals(0, f.write(q, off, d));
                System.arraycopy(d, 0, shadow, (int) off, d.length);
            }
            assertEquals(0, f.ctx.run(() -> q.pwriteZeroes(1L << 20, 256L << 10, RequestFlags.MAY_UNMAP)));
            Arrays.fill(shadow, 1 << 20, (1 << 20) + (256 << 10), (byte) 0);
            assertEquals(0, f.ctx.run(() -> q.pdiscard(2L << 20, 128L << 10)));
            Arrays.fill(shadow, 2 << 20, (2 << 20) + (128 << 10), (byte) 0);
            assertArrayEquals(shadow, f.read(q, 0, size));
            assertEquals(0, f.close(q));
            ImageFiles.store(mem, img, len);
        }
        checkAndCompare(img, shadow);
        ok("qemu-img", "snapshot", "-a", "s1", img.toString());
        checkAndCompare(img, before);
    }
}
