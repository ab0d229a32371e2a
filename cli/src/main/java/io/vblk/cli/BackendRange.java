package io.vblk.cli;

import io.vblk.block.Errno;

/**
 * The range check a BlockBackend applies before any request reaches the graph
 * (blk_check_byte_request): qemu-io and qemu-img bench see EIO for a request that starts or ends
 * past the end of the image, even where the node below would zero-fill or grow the file. vblk io
 * and vblk bench apply it so that their results match those tools.
 */
public final class BackendRange {
    private BackendRange() {}

    /** 0, or -EIO when {@code [offset, offset+bytes)} is not inside an image of {@code length} bytes. */
    public static int check(long length, long offset, long bytes) {
        if (offset < 0 || bytes < 0) {
            return -Errno.EIO;
        }
        if (length >= 0 && (offset > length || length - offset < bytes)) {
            return -Errno.EIO;
        }
        return 0;
    }
}
