package io.vblk.virtio.queue;

/**
 * Why a descriptor chain is malformed (the spec's MUST rules, research section 3). A chain with an
 * error still has a valid head, so the device may return it (policy "drop") or set
 * DEVICE_NEEDS_RESET (policy "needs-reset").
 */
public enum ChainError {
    NEXT_OUT_OF_RANGE("next index beyond the descriptor table"),
    LOOP("chain longer than its table (loop)"),
    LENGTH_OVERFLOW("total length exceeds 2^32-1 bytes"),
    READABLE_AFTER_WRITABLE("device-readable descriptor after a device-writable one"),
    ADDRESS_OUT_OF_RANGE("buffer outside guest memory"),
    INDIRECT_NOT_NEGOTIATED("indirect descriptor without VIRTIO_F_INDIRECT_DESC"),
    INDIRECT_WITH_NEXT("indirect descriptor with NEXT set"),
    INDIRECT_BAD_LENGTH("indirect table length zero or not a multiple of 16"),
    INDIRECT_OUT_OF_RANGE("indirect table outside guest memory"),
    NESTED_INDIRECT("indirect descriptor inside an indirect table");

    public final String message;

    ChainError(String message) {
        this.message = message;
    }
}
