package io.vblk.aio.file;

import io.vblk.aio.LinuxConstants;
import io.vblk.aio.Native;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;

/** The few {@code struct stat} fields the file driver needs, read with fstat(2). Slow path only. */
record FileStat(int mode, long size) {
    boolean isRegular() {
        return (mode & LinuxConstants.S_IFMT) == LinuxConstants.S_IFREG;
    }

    boolean isDirectory() {
        return (mode & LinuxConstants.S_IFMT) == LinuxConstants.S_IFDIR;
    }

    boolean isBlockDevice() {
        return (mode & LinuxConstants.S_IFMT) == LinuxConstants.S_IFBLK;
    }

    /** fstat of {@code fd}, or null with errno saved when it fails. */
    static FileStat of(int fd) {
        try (NativeBuffer b = NativeBuffer.allocate(LinuxConstants.STAT_SIZE, 16)) {
            if (Native.LIBC.fstat(fd, b.address()) != 0) {
                return null;
            }
            return new FileStat(NativeMemory.getIntLE(b.address() + LinuxConstants.STAT_ST_MODE),
                    NativeMemory.getLongLE(b.address() + LinuxConstants.STAT_ST_SIZE));
        }
    }
}
