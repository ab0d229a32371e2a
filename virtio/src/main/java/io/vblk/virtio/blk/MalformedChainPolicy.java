package io.vblk.virtio.blk;

/**
 * What the device does with a chain it cannot answer (bad descriptors, no 16-byte header, no
 * status byte). The spec's route is {@link #NEEDS_RESET} (QEMU's virtio_error); {@link #DROP}
 * returns the chain with used length 0 and goes on (cloud-hypervisor, Firecracker). A corrupt ring
 * (avail.idx running ahead, a head out of range) always means NEEDS_RESET: no chain can be returned.
 */
public enum MalformedChainPolicy {
    NEEDS_RESET,
    DROP;

    public static MalformedChainPolicy parse(String s) {
        return valueOf(s.trim().toUpperCase(java.util.Locale.ROOT).replace('-', '_'));
    }
}
