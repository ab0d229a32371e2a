package io.vblk.aio.file;

import io.vblk.aio.LinuxConstants;
import io.vblk.aio.Native;
import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;

/**
 * Finds the O_DIRECT request alignment and buffer alignment of an open file: QEMU's
 * raw_probe_alignment. Block devices answer BLKSSZGET; otherwise O_DIRECT reads of 1, 512, 1024,
 * 2048 and 4096 bytes at offset 0 are tried and the first that does not fail with EINVAL wins
 * (other errors count as success, as QEMU does). A win at 1 says nothing ("unknown"), so the safe
 * maximum is used. The buffer alignment is probed the same way by reading at {@code buf + align}.
 */
public final class AlignmentProbe {
    private AlignmentProbe() {}

    static final int[] CANDIDATES = {1, 512, 1024, 2048, 4096};

    /** The probed alignments: every request offset/length is a multiple of {@code request}, every buffer address of {@code buffer}. */
    public record Result(int request, int buffer) {}

    public static int pageSize() {
        long p = Native.LIBC.sysconf(LinuxConstants.SC_PAGESIZE);
        return p > 0 ? (int) p : 4096;
    }

    /** One O_DIRECT read attempt: true unless the kernel said EINVAL. Replaceable in unit tests. */
    @FunctionalInterface
    public interface Reader {
        boolean works(long addr, int len);
    }

    public static Result probe(int fd, boolean blockDevice, String filename) throws BlockException {
        int sector = 0;
        if (blockDevice) {
            try (NativeBuffer v = NativeBuffer.allocate(8, 8)) {
                if (Native.LIBC.ioctl(fd, LinuxConstants.BLKSSZGET, v.address()) == 0) {
                    sector = NativeMemory.getIntLE(v.address());
                }
            }
        }
        return probe(sector, filename, (addr, len) -> readWorks(fd, addr, len));
    }

    /** The probe proper, given the device's logical sector size (0 if unknown) and a read attempt. */
    public static Result probe(int sectorSize, String filename, Reader reader) throws BlockException {
        int request = sectorSize;
        int buffer = 0;
        int maxAlign = Math.max(4096, pageSize());
        try (NativeBuffer buf = NativeBuffer.allocate(2L * maxAlign, maxAlign)) {
            long b = buf.address();
            if (request == 0) {
                for (int a : CANDIDATES) {
                    if (reader.works(b, a)) {
                        request = a != 1 ? a : maxAlign;
                        break;
                    }
                }
            }
            for (int a : CANDIDATES) {
                if (reader.works(b + a, maxAlign)) {
                    buffer = a != 1 ? a : request;
                    break;
                }
            }
        }
        if (request == 0 || buffer == 0) {
            throw new BlockException(Errno.EINVAL, "Could not find working O_DIRECT alignment for '" + filename
                    + "'; try cache.direct=off");
        }
        return new Result(request, buffer);
    }

    private static boolean readWorks(int fd, long addr, int len) {
        long r = Native.LIBC.pread(fd, addr, len, 0);
        return r >= 0 || Native.errno() != Errno.EINVAL;
    }
}
