package io.vblk.virtio.queue;

/**
 * The device-to-driver notification of a queue ("used buffer notification"; an irqfd or MSI-X
 * vector in QEMU, the call eventfd in vhost-user). The embedder plugs in an eventfd write, a
 * callback or a test harness. Called on the queue's I/O thread; must not block for long.
 */
@FunctionalInterface
public interface Interrupt {
    void signal();

    /** An interrupt that goes nowhere (the driver polls). */
    Interrupt NONE = () -> {};
}
