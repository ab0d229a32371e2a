package io.vblk.nativetests.aio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.IoThreads;
import io.vblk.aio.LinuxAio;
import io.vblk.aio.file.FileDriver;
import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.nativetests.Requirements;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The file driver on a block device with 4096-byte logical sectors (a loop device): BLKSSZGET, BLKGETSIZE64, bounce RMW, BLKDISCARD/BLKZEROOUT. */
class LoopDeviceTest {
    @TempDir Path dir;

    static byte[] pattern(long off, int len) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = (byte) ((off + i) * 13 + 5);
        }
        return b;
    }

    @Test
    void fourKSectorDevice() throws Exception {
        Path backing = dir.resolve("loop.img");
        try (RandomAccessFile r = new RandomAccessFile(backing.toFile(), "rw")) {
            r.setLength(8 << 20);
        }
        Sys.Result lo = Sys.run("losetup", "-f", "--show", "--sector-size", "4096", backing.toString());
        Requirements.require(Sys.isRoot() && lo.ok() && lo.out().startsWith("/dev/loop"),
                "needs root and a free loop device (losetup: " + lo.out() + ")");
        String dev = lo.out();
        AioContext ctx = IoThreads.start("loop-test");
        try {
            BlockNode node = BlockNode.open(BlockOptions.parse("driver=file,filename=" + dev + ",cache.direct=on,aio=native"));
            FileDriver d = (FileDriver) node.driver();
            try (NativeBuffer b = NativeBuffer.allocate(3 * 4096, 4096)) {
                assertTrue(d.isBlockDevice());
                assertEquals(4096, d.requestAlignment(), "BLKSSZGET of a 4k-sector loop device");
                assertEquals(4096, node.limits().requestAlignment);
                assertEquals(8 << 20, node.getLength(), "BLKGETSIZE64");
                // aligned write through AIO
                byte[] data = pattern(0, 8192);
                b.copyFrom(data, 0, 0, data.length);
                assertEquals(0, ctx.run(() -> node.pwritev(0, 8192, b.asIoVector(0, 8192), 0)));
                // a 512-byte write at 512: not a whole sector, so bounce read-modify-write
                byte[] small = pattern(99_999, 512);
                b.copyFrom(small, 0, 8192 + 512, 512);
                assertEquals(0, ctx.run(() -> node.pwritev(512, 512, IoVector.of(b.address() + 8192 + 512, 512), 0)));
                assertEquals(1, d.bouncedRequests());
                b.fill(0, 3 * 4096, (byte) 0);
                assertEquals(0, ctx.run(() -> node.preadv(0, 8192, b.asIoVector(0, 8192), 0)));
                byte[] want = data.clone();
                System.arraycopy(small, 0, want, 512, 512);
                byte[] got = new byte[8192];
                b.copyTo(0, got, 0, 8192);
                assertArrayEquals(want, got);
                LinuxAio[] e = new LinuxAio[1];
                ctx.runOnThread(() -> e[0] = LinuxAio.of(ctx));
                assertTrue(e[0].stats().ringCompletions > 0, e[0].stats().toString());
                // zeroing and discarding through the block-device ioctls
                assertEquals(0, ctx.run(() -> d.coPwriteZeroes(0, 4096, 0)));
                b.fill(0, 8192, (byte) 1);
                assertEquals(0, ctx.run(() -> node.preadv(0, 8192, b.asIoVector(0, 8192), 0)));
                b.copyTo(0, got, 0, 8192);
                byte[] want2 = want.clone();
                java.util.Arrays.fill(want2, 0, 4096, (byte) 0);
                assertArrayEquals(want2, got, "BLKZEROOUT zeroed the first sector only");
                int dr = ctx.run(() -> d.coPdiscard(1 << 20, 1 << 20));
                assertTrue(dr == 0 || (dr == -io.vblk.block.Errno.ENOTSUP && !d.discardSupported()), "discard: " + dr);
            } finally {
                ctx.run(node::close);
            }
        } finally {
            ctx.close();
            Sys.run("losetup", "-d", dev);
        }
    }
}
