package io.vblk.nativetests.qcow2proof;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.aio.IoThreads;
import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.drivers.DebugDriver;
import io.vblk.qcow2.Qcow2Driver;
import io.vblk.qcow2.Qcow2Header;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A qcow2 image file opened by vblk over the real {@code file} driver (O_DIRECT + Linux AIO,
 * discard=unmap), optionally with the {@code debug} driver in between, together with a sparse raw
 * shadow file that receives the same operations. Every request runs in a coroutine on an
 * epoll-polled I/O thread ({@link IoThreads}), as {@code vblk io} runs them.
 */
final class ProofImage implements AutoCloseable {
    /** The protocol options the proofs use: O_DIRECT and Linux AIO. */
    static final String FILE_OPTS = "file.aio=native,cache.direct=on,discard=unmap";

    final Path path;
    final Shadow shadow;
    final AioContext ctx = IoThreads.start("qcow2-proof");
    BlockNode q;

    ProofImage(Path path, Path shadowPath, long size) throws IOException {
        this.path = path;
        this.shadow = shadowPath == null ? null : new Shadow(shadowPath, size);
    }

    /** Opens qcow2 -> file. */
    BlockNode open(String extra) throws BlockException {
        return openWith("driver=qcow2,file.driver=file,file.filename=" + path + ",file.aio=native,cache.direct=on,discard=unmap"
                + (extra == null || extra.isEmpty() ? "" : "," + extra));
    }

    /** Opens qcow2 -> debug -> file; {@code debugOpts} are the debug node's options without the "file." prefix. */
    BlockNode openDebug(String debugOpts, String extra) throws BlockException {
        String d = debugOpts == null || debugOpts.isEmpty() ? "" : "," + prefixed("file.", debugOpts);
        return openWith("driver=qcow2,file.driver=debug,file.file.driver=file,file.file.filename=" + path + ",file.file.aio=native"
                + ",cache.direct=on,discard=unmap" + d + (extra == null || extra.isEmpty() ? "" : "," + extra));
    }

    private static String prefixed(String p, String opts) {
        StringBuilder b = new StringBuilder();
        for (String kv : opts.split(",")) {
            if (b.length() > 0) b.append(',');
            b.append(p).append(kv);
        }
        return b.toString();
    }

    BlockNode openWith(String opts) throws BlockException {
        BlockException[] err = new BlockException[1];
        BlockNode[] out = new BlockNode[1];
        ctx.run(() -> {
            try {
                out[0] = BlockNode.open(BlockOptions.parse(opts));
            } catch (BlockException e) {
                err[0] = e;
            }
            return 0;
        });
        if (err[0] != null) throw err[0];
        q = out[0];
        return q;
    }

    Qcow2Driver drv() {
        return (Qcow2Driver) q.driver();
    }

    /** The qcow2 cache statistics, read on the I/O thread. */
    Qcow2Driver.CacheStats stats() {
        Qcow2Driver.CacheStats[] out = new Qcow2Driver.CacheStats[1];
        ctx.run(() -> {
            out[0] = drv().cacheStats();
            return 0;
        });
        return out[0];
    }

    DebugDriver debug() {
        return (DebugDriver) q.file().node().driver();
    }

    /** Writes {@code data} through vblk; on success the shadow gets it too. Returns 0 or -errno. */
    int write(long off, byte[] data) {
        int r = ctx.run(() -> writeNow(q, off, data));
        if (r == 0 && shadow != null) shadow.write(off, data);
        return r;
    }

    void mustWrite(long off, byte[] data) {
        assertEquals(0, write(off, data), "write " + off + "+" + data.length);
    }

    /** A pwritev from inside a coroutine (for concurrent writers). */
    static int writeNow(BlockNode n, long off, byte[] data) {
        try (NativeBuffer b = NativeBuffer.allocate(Math.max(1, data.length), 4096)) {
            b.copyFrom(data, 0, 0, data.length);
            return n.pwritev(off, data.length, IoVector.of(b.address(), data.length), 0, 0);
        }
    }

    int zero(long off, long len, int flags) {
        int r = ctx.run(() -> q.pwriteZeroes(off, len, flags));
        if (r == 0 && shadow != null) shadow.zero(off, len);
        return r;
    }

    /** A discard; the shadow is zeroed only over whole clusters (the part qcow2 discards). */
    int discard(long off, long len) {
        int r = ctx.run(() -> q.pdiscard(off, len));
        if (r == 0 && shadow != null) {
            long cs = q.driver().clusterSize();
            long a = (off + cs - 1) / cs * cs;
            long e = Math.min((off + len) / cs * cs, q.getLength());
            if (off + len >= q.getLength()) e = off + len;
            if (e > a) shadow.zero(a, e - a);
        }
        return r;
    }

    int flush() {
        return ctx.run(q::flush);
    }

    byte[] read(long off, int len) {
        byte[] out = new byte[len];
        int r = ctx.run(() -> {
            try (NativeBuffer b = NativeBuffer.allocate(Math.max(1, len), 4096)) {
                int ret = q.preadv(off, len, IoVector.of(b.address(), len), 0, 0);
                b.copyTo(0, out, 0, len);
                return ret;
            }
        });
        assertEquals(0, r, "read " + off + "+" + len);
        return out;
    }

    /** A clean close (flushes); asserts success. */
    void closeImage() {
        if (q == null) return;
        BlockNode n = q;
        q = null;
        assertEquals(0, ctx.run(n::close), "close");
    }

    /** Drops the node without flushing anything (the process dies here). */
    void abandon() {
        if (q == null) return;
        BlockNode n = q;
        q = null;
        n.closeWithoutFlush();
    }

    /** Closes the image, then qemu-img check must exit 0 and compare must find it equal to the shadow. */
    void closeCheckCompare() throws Exception {
        closeImage();
        Qemu.checkClean(path);
        compareShadow();
    }

    void compareShadow() throws Exception {
        shadow.sync();
        Qemu.compare(path, shadow.path);
    }

    @Override
    public void close() throws IOException {
        try {
            if (q != null) q.closeWithoutFlush();
        } finally {
            ctx.close();
            if (shadow != null) shadow.close();
        }
    }

    // ------------------------------------------------------------------ raw image inspection

    static Qcow2Header header(Path img) throws IOException, BlockException {
        byte[] first;
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            int cb = 16;
            f.seek(20);
            cb = f.readInt();
            int n = (int) Math.min(f.length(), 1L << Math.min(Math.max(cb, 9), 21));
            first = new byte[n];
            f.seek(0);
            f.readFully(first);
        }
        return Qcow2Header.parse(first);
    }

    static long be64(Path img, long off) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            f.seek(off);
            return f.readLong();
        }
    }

    static void putBe64(Path img, long off, long v) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(off);
            f.writeLong(v);
        }
    }

    static byte[] bytes(Path img, long off, int len) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            byte[] b = new byte[len];
            f.seek(off);
            f.readFully(b);
            return b;
        }
    }

    static byte[] pattern(long seed, int len) {
        byte[] b = new byte[len];
        new java.util.Random(seed).nextBytes(b);
        return b;
    }

    static byte[] fill(int len, int value) {
        byte[] b = new byte[len];
        java.util.Arrays.fill(b, (byte) value);
        return b;
    }

    /** The raw shadow: a sparse file of the virtual size receiving the same writes, zero writes and discards. */
    static final class Shadow implements AutoCloseable {
        final Path path;
        private final RandomAccessFile f;

        Shadow(Path path, long size) throws IOException {
            this.path = path;
            this.f = new RandomAccessFile(path.toFile(), "rw");
            f.setLength(size);
        }

        void write(long off, byte[] data) {
            try {
                f.seek(off);
                f.write(data);
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        }

        void zero(long off, long len) {
            byte[] z = new byte[(int) Math.min(len, 1 << 20)];
            for (long o = off; o < off + len; o += z.length) {
                int n = (int) Math.min(z.length, off + len - o);
                try {
                    f.seek(o);
                    f.write(z, 0, n);
                } catch (IOException e) {
                    throw new AssertionError(e);
                }
            }
        }

        byte[] read(long off, int len) throws IOException {
            byte[] b = new byte[len];
            f.seek(off);
            f.readFully(b);
            return b;
        }

        void setLength(long size) throws IOException {
            f.setLength(size);
        }

        void sync() throws IOException {
            f.getFD().sync();
        }

        @Override
        public void close() throws IOException {
            f.close();
        }
    }

    static ByteBuffer be(byte[] b) {
        return ByteBuffer.wrap(b);
    }

    static void copy(Path from, Path to) throws IOException {
        Files.copy(from, to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
}
