package io.vblk.aio.file;

import io.vblk.aio.Iocb;
import io.vblk.aio.LinuxConstants;
import io.vblk.aio.Native;
import io.vblk.aio.Syscalls;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockDriverFactory;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.Errno;
import io.vblk.block.NativeBuffer;

/**
 * Opens {@code file} nodes (QEMU's raw_open_common): options {@code filename} (required),
 * {@code aio=threads|native} (native needs {@code cache.direct=on}), {@code aio-max-batch}
 * (0 = the I/O thread's default) and {@code locking} (accepted, ignored). Opens O_DIRECT when the
 * node is direct and read-only when it is read-only; probes alignment under O_DIRECT and whether
 * RWF_DSYNC works (FUA). Every failure is one line naming the errno, and leaves no fd open.
 */
public final class FileDriverFactory implements BlockDriverFactory {
    @Override
    public String name() {
        return "file";
    }

    @Override
    public boolean isProtocol() {
        return true;
    }

    @Override
    public BlockDriver open(BlockNode node, BlockOptions o) throws BlockException {
        String filename = o.remove("filename");
        if (filename == null || filename.isEmpty()) {
            throw new BlockException(Errno.EINVAL, "The 'file' block driver requires a file name (filename=...)");
        }
        String aio = o.get("aio", "threads");
        o.remove("aio");
        boolean useNative = switch (aio) {
            case "threads" -> false;
            case "native" -> true;
            case "io_uring" -> throw new BlockException(Errno.ENOTSUP, "aio=io_uring is not supported by vblk; use aio=native or aio=threads");
            default -> throw new BlockException(Errno.EINVAL, "Invalid aio option '" + aio + "' (expected threads or native)");
        };
        long maxBatch = o.getLong("aio-max-batch", 0);
        o.remove("aio-max-batch");
        if (maxBatch < 0 || maxBatch > Integer.MAX_VALUE) {
            throw new BlockException(Errno.EINVAL, "aio-max-batch must be a non-negative integer, not " + maxBatch);
        }
        String locking = o.get("locking", "auto");
        o.remove("locking");
        if (!locking.equals("auto") && !locking.equals("on") && !locking.equals("off")) {
            throw new BlockException(Errno.EINVAL, "Invalid locking option '" + locking + "' (expected auto, on or off)");
        }
        boolean direct = node.isDirect();
        if (useNative && !direct) {
            throw new BlockException(Errno.EINVAL, "aio=native requires cache.direct=on (O_DIRECT); use -t none or aio=threads");
        }
        boolean readOnly = node.isReadOnly();
        int flags = (readOnly ? Syscalls.O_RDONLY : Syscalls.O_RDWR) | Syscalls.O_CLOEXEC | (direct ? Syscalls.O_DIRECT : 0);
        int fd = Native.LIBC.open(filename, flags, 0);
        if (fd < 0) {
            int e = Native.errno();
            throw new BlockException(e, "Could not open '" + filename + "'"
                    + (!readOnly && (e == Errno.EACCES || e == Errno.EROFS || e == Errno.EPERM) ? " for writing" : "") + ": " + Errno.describe(e)
                    + (direct && e == Errno.EINVAL ? " (O_DIRECT unsupported here? try cache.direct=off)" : ""));
        }
        try {
            FileStat st = FileStat.of(fd);
            if (st == null) {
                int e = Native.errno();
                throw new BlockException(e, "Could not stat '" + filename + "': " + Errno.describe(e));
            }
            if (st.isDirectory()) {
                throw new BlockException(Errno.EISDIR, "Could not open '" + filename + "': " + Errno.describe(Errno.EISDIR));
            }
            if (!st.isRegular() && !st.isBlockDevice()) {
                throw new BlockException(Errno.EINVAL, "'" + filename + "' is neither a regular file nor a block device");
            }
            int request = 1;
            int buffer = 1;
            if (direct) {
                AlignmentProbe.Result a = AlignmentProbe.probe(fd, st.isBlockDevice(), filename);
                request = a.request();
                buffer = a.buffer();
            }
            boolean fua = probeDsync(fd, Math.max(request, buffer));
            return new FileDriver(filename, fd, direct, useNative, st.isBlockDevice(), (int) maxBatch, request, buffer, fua);
        } catch (BlockException | RuntimeException e) {
            Native.LIBC.close(fd);
            throw e;
        }
    }

    /**
     * True if per-write RWF_DSYNC works (the FUA mapping): an aligned one-block preadv2 with the
     * flag succeeds or fails with anything but EOPNOTSUPP/EINVAL.
     */
    static boolean probeDsync(int fd, int align) {
        int len = Math.max(4096, align);
        try (NativeBuffer b = NativeBuffer.allocate(len + Iocb.IOVEC_SIZE, len)) {
            long iov = b.address() + len;
            Iocb.putIovec(iov, 0, b.address(), len);
            long r = Native.LIBC.preadv2(fd, iov, 1, 0, LinuxConstants.RWF_DSYNC);
            if (r >= 0) {
                return true;
            }
            int e = Native.errno();
            return e != Errno.EOPNOTSUPP && e != Errno.EINVAL;
        }
    }
}
