package io.vblk.cli;

import io.vblk.aio.AioStats;
import io.vblk.aio.LinuxAio;
import io.vblk.aio.Native;
import io.vblk.aio.Syscalls;
import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;

/**
 * {@code --path aio}: the Linux AIO engine alone on the file opened with O_DIRECT, no block layer
 * in between. Comparing it with {@code --path block} measures what the block layer costs.
 */
final class AioBenchPath implements BenchPath {
    private static final int SEEK_END = 2;
    private final AioContext ctx;
    private final int fd;
    private final long length;
    private final LinuxAio aio;

    AioBenchPath(ImageSpec spec, AioContext ctx, boolean write) throws BlockException, CliException {
        if (spec.imageOpts || (spec.format != null && !spec.format.equals("raw") && !spec.format.equals("file"))) {
            throw new CliException("--path aio works on raw files only (-f raw)");
        }
        this.ctx = ctx;
        int flags = (write ? Syscalls.O_RDWR : Syscalls.O_RDONLY) | Syscalls.O_DIRECT | Syscalls.O_CLOEXEC;
        int f = Native.LIBC.open(spec.filename, flags, 0);
        if (f < 0) {
            int e = Native.errno();
            throw new BlockException(e, "Could not open '" + spec.filename + "': " + Errno.describe(e));
        }
        long len = Native.LIBC.lseek(f, 0, SEEK_END);
        if (len < 0) {
            int e = Native.errno();
            Native.LIBC.close(f);
            throw new BlockException(e, "Could not get the size of '" + spec.filename + "': " + Errno.describe(e));
        }
        LinuxAio[] a = new LinuxAio[1];
        RuntimeException[] failure = new RuntimeException[1];
        ctx.runOnThread(() -> {
            try {
                a[0] = LinuxAio.of(ctx);
            } catch (RuntimeException e) {
                failure[0] = e;
            }
        });
        if (failure[0] != null) {
            Native.LIBC.close(f);
            throw new BlockException(Errno.EIO, "Linux AIO: " + failure[0].getMessage());
        }
        this.fd = f;
        this.length = len;
        this.aio = a[0];
    }

    @Override
    public AioContext context() {
        return ctx;
    }

    @Override
    public long length() {
        return length;
    }

    @Override
    public int request(boolean write, long offset, IoVector qiov) {
        int c = BackendRange.check(length, offset, qiov.size());
        if (c < 0) {
            return c;
        }
        return write ? aio.pwritev(fd, offset, qiov, 0, qiov.size(), 0, 0)
                : aio.preadv(fd, offset, qiov, 0, qiov.size(), 0);
    }

    @Override
    public int flush() {
        int r = aio.fdsync(fd);
        if (r == -Errno.ENOTSUP) {
            r = (int) Math.min(0, Native.ret(Native.LIBC.fdatasync(fd)));
        }
        return r;
    }

    @Override
    public AioStats aioStats() {
        return aio.stats();
    }

    @Override
    public void close() {
        Native.LIBC.close(fd);
        ctx.close();
    }
}
