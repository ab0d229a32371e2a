package io.vblk.nativetests.aio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.IoThreads;
import io.vblk.aio.file.FileDriver;
import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.Errno;
import io.vblk.block.NativeBuffer;
import io.vblk.nativetests.Requirements;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The file driver on small, limited file systems mounted for the test: a full tmpfs (short write
 * becomes ENOSPC on both I/O paths), tmpfs without ZERO_RANGE, and ramfs without any fallocate
 * (the ENOTSUP latches).
 */
class SmallFileSystemTest {
    @TempDir Path dir;
    Path mnt;
    AioContext ctx;

    @BeforeEach
    void start() throws Exception {
        mnt = Files.createDirectory(dir.resolve("mnt"));
        ctx = IoThreads.start("smallfs-test");
    }

    @AfterEach
    void stop() {
        ctx.close();
        Sys.umount(mnt);
    }

    static byte[] pattern(long off, int len) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = (byte) ((off + i) * 7 + 3);
        }
        return b;
    }

    private int write(BlockNode node, long off, byte[] data) {
        try (NativeBuffer b = NativeBuffer.allocate(data.length, 4096)) {
            b.copyFrom(data, 0, 0, data.length);
            return ctx.run(() -> node.pwritev(off, data.length, b.asIoVector(0, data.length), 0));
        }
    }

    private byte[] read(BlockNode node, long off, int len) {
        try (NativeBuffer b = NativeBuffer.allocate(len, 4096)) {
            assertEquals(0, ctx.run(() -> node.preadv(off, len, b.asIoVector(0, len), 0)));
            byte[] out = new byte[len];
            b.copyTo(0, out, 0, len);
            return out;
        }
    }

    @Test
    void shortWriteOnAFullFileSystemIsEnospc() throws Exception {
        Requirements.require(Sys.mount("tmpfs", "size=1m", mnt), "needs root to mount a 1 MiB tmpfs");
        for (String opts : new String[] {"aio=threads", "cache.direct=on,aio=native"}) {
            Path f = mnt.resolve("full.img");
            Files.deleteIfExists(f);
            Files.write(f, new byte[0]);
            BlockNode node = BlockNode.open(BlockOptions.parse("driver=file,filename=" + f + "," + opts));
            try {
                byte[] head = pattern(0, 65536);
                assertEquals(0, write(node, 0, head), opts);
                int r = write(node, 65536, pattern(65536, 2 << 20));
                assertEquals(-Errno.ENOSPC, r, opts + ": " + Errno.name(r));
                assertArrayEquals(head, read(node, 0, 65536), opts + ": data before the failed write intact");
                if (opts.contains("native")) {
                    io.vblk.aio.LinuxAio[] e = new io.vblk.aio.LinuxAio[1];
                    ctx.runOnThread(() -> e[0] = io.vblk.aio.LinuxAio.of(ctx));
                    assertTrue(e[0].stats().iocbsSubmitted >= 3, "went through io_submit: " + e[0].stats());
                }
            } finally {
                node.closeWithoutFlush();
            }
            Files.delete(f);
        }
    }

    @Test
    void zeroRangeUnsupportedLatchesAndPunchHoleZeroes() throws Exception {
        Requirements.require(Sys.mount("tmpfs", "size=16m", mnt), "needs root to mount a tmpfs");
        Path f = mnt.resolve("z.img");
        Files.write(f, pattern(0, 1 << 20));
        BlockNode node = BlockNode.open(BlockOptions.parse("driver=file,filename=" + f + ",aio=threads"));
        FileDriver d = (FileDriver) node.driver();
        try {
            assertEquals(0, ctx.run(() -> d.coPwriteZeroes(65536, 65536, 0)));
            assertFalse(d.zeroRangeSupported(), "tmpfs has no FALLOC_FL_ZERO_RANGE: latched off");
            assertTrue(d.punchHoleSupported());
            assertArrayEquals(new byte[65536], read(node, 65536, 65536));
            assertEquals(0, ctx.run(() -> d.coPwriteZeroes(200_000 & ~4095, 8192, 0)), "second call skips ZERO_RANGE");
            assertArrayEquals(new byte[8192], read(node, 200_000 & ~4095, 8192));
            assertArrayEquals(Arrays.copyOfRange(pattern(0, 1 << 20), 131072, 135168), read(node, 131072, 4096));
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void ramfsSwitchesDiscardAndZeroesOff() throws Exception {
        Requirements.require(Sys.mount("ramfs", "mode=755", mnt), "needs root to mount ramfs");
        Path f = mnt.resolve("r.img");
        byte[] all = pattern(0, 256 << 10);
        Files.write(f, all);
        BlockNode node = BlockNode.open(BlockOptions.parse("driver=file,filename=" + f + ",aio=threads"));
        FileDriver d = (FileDriver) node.driver();
        try {
            assertEquals(-Errno.ENOTSUP, ctx.run(() -> d.coPdiscard(0, 65536)));
            assertFalse(d.discardSupported());
            assertEquals(-Errno.ENOTSUP, ctx.run(() -> d.coPdiscard(65536, 65536)), "stays off");
            assertEquals(-Errno.ENOTSUP, ctx.run(() -> d.coPwriteZeroes(0, 65536, 0)));
            assertFalse(d.zeroRangeSupported());
            assertFalse(d.punchHoleSupported());
            assertArrayEquals(all, read(node, 0, all.length), "nothing was lost");
        } finally {
            ctx.run(node::close);
        }
    }

    @Test
    void readOnlyFileOpenedForWriteGetsOneLine() throws Exception {
        Path f = dir.resolve("immutable.img");
        Files.write(f, pattern(0, 8192));
        Sys.Result r = Sys.run("chattr", "+i", f.toString());
        Requirements.require(r.ok(), "needs chattr +i (root on ext4): " + r.out());
        try {
            io.vblk.block.BlockException e = org.junit.jupiter.api.Assertions.assertThrows(io.vblk.block.BlockException.class,
                    () -> BlockNode.open(BlockOptions.parse("driver=file,filename=" + f)));
            assertEquals(Errno.EPERM, e.errno());
            assertTrue(e.getMessage().contains("EPERM") && e.getMessage().contains("for writing") && !e.getMessage().contains("\n"),
                    e.getMessage());
            BlockNode ro = BlockNode.open(BlockOptions.parse("driver=file,filename=" + f + ",read-only=on"));
            try {
                assertArrayEquals(pattern(0, 8192), read(ro, 0, 8192));
            } finally {
                ctx.run(ro::close);
            }
        } finally {
            Sys.run("chattr", "-i", f.toString());
        }
    }
}
