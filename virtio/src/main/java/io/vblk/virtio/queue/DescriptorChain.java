package io.vblk.virtio.queue;

import io.vblk.block.IoVector;

/**
 * One popped descriptor chain (QEMU's VirtQueueElement, virtio-queue's DescriptorChain): the head
 * index and the guest buffers already translated to host slices, device-readable ones first, then
 * device-writable ones. Reusable: {@link VirtQueue#pop} refills it, so a pool of chains makes the
 * steady state allocation-free. The queue fills it; it knows nothing about block requests.
 */
public final class DescriptorChain {
    int head = -1;
    final IoVector readable = new IoVector(8);
    final IoVector writable = new IoVector(8);
    int descriptors;
    boolean indirect;
    ChainError error;

    void reset(int head) {
        this.head = head;
        readable.reset();
        writable.reset();
        descriptors = 0;
        indirect = false;
        error = null;
    }

    /** Head descriptor index: the id returned in the used ring. */
    public int head() { return head; }
    /** Device-readable buffers in chain order (host slices). */
    public IoVector readable() { return readable; }
    /** Device-writable buffers in chain order (host slices). */
    public IoVector writable() { return writable; }
    /** Descriptors walked, direct and indirect. */
    public int descriptors() { return descriptors; }
    /** True if the chain used an indirect table. */
    public boolean usedIndirect() { return indirect; }
    /** Null for a well-formed chain, else what the driver got wrong. */
    public ChainError error() { return error; }

    @Override
    public String toString() {
        return "chain[head=" + head + " r=" + readable.size() + " w=" + writable.size() + (error != null ? " " + error : "") + "]";
    }
}
