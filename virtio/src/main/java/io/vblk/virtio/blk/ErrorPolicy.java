package io.vblk.virtio.blk;

import io.vblk.block.Errno;

/**
 * What to do when a read or write fails: QEMU's BlockdevOnError (rerror=/werror=) and
 * blk_get_error_action.
 */
public enum ErrorPolicy {
    /** Complete with VIRTIO_BLK_S_IOERR. */
    REPORT,
    /** Complete with VIRTIO_BLK_S_OK as if nothing happened. */
    IGNORE,
    /** Keep the request, pause the device; {@link VirtioBlkDevice#resume()} retries it. */
    STOP,
    /** STOP on ENOSPC, REPORT otherwise. */
    ENOSPC;

    /** The action for a failure with positive errno {@code errno}: REPORT, IGNORE or STOP. */
    public ErrorPolicy actionFor(int errno) {
        return switch (this) {
            case ENOSPC -> errno == Errno.ENOSPC ? STOP : REPORT;
            default -> this;
        };
    }

    public static ErrorPolicy parse(String s) {
        return valueOf(s.trim().toUpperCase(java.util.Locale.ROOT));
    }
}
